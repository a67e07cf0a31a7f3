/**
 * Which arriving spend may raise a spending alert, so billing can apply it first (ADR 0008,
 * amendment 3). Per account with a threshold, this process remembers the spend still needed before
 * the next alert (as its last update or threshold change left it) and the spend that has arrived
 * since and is not applied yet. Only a hint for ordering work: a wrong or missing hint delays an
 * alert to the normal queue, it never changes what is applied or alerted.
 */
export class AlertWatch {
  /** Insertion order = recency (re-inserted on every change): the first key is the least recently seen. */
  private readonly accounts = new Map<string, { headroomMinor: number; pendingMinor: number }>();

  constructor(private readonly maxAccounts = 250_000) {}

  get size(): number {
    return this.accounts.size;
  }

  /**
   * Spend of the account arrived (decoded, not applied yet). True when it may raise an alert: with
   * what arrived before and is still pending, it reaches the account's known headroom.
   */
  arrive(accountId: string, amountMinor: number): boolean {
    const watched = this.accounts.get(accountId);
    if (!watched) return false;
    watched.pendingMinor += Math.max(0, amountMinor);
    return watched.pendingMinor >= watched.headroomMinor;
  }

  /**
   * The account was updated: `appliedMinor` of the pending spend is now in its total and
   * `headroomMinor` is what its document says now (undefined: no alert can come this month).
   */
  applied(accountId: string, appliedMinor: number, headroomMinor: number | undefined): void {
    const pendingMinor = Math.max(0, (this.accounts.get(accountId)?.pendingMinor ?? 0) - Math.max(0, appliedMinor));
    this.remember(accountId, headroomMinor, pendingMinor);
  }

  /** The account's threshold was set or cleared by the API. */
  thresholdChanged(accountId: string, headroomMinor: number | undefined): void {
    this.remember(accountId, headroomMinor, this.accounts.get(accountId)?.pendingMinor ?? 0);
  }

  private remember(accountId: string, headroomMinor: number | undefined, pendingMinor: number): void {
    this.accounts.delete(accountId);
    if (headroomMinor === undefined || this.maxAccounts <= 0) return;
    this.accounts.set(accountId, { headroomMinor, pendingMinor });
    if (this.accounts.size > this.maxAccounts) {
      const oldest = this.accounts.keys().next();
      if (!oldest.done) this.accounts.delete(oldest.value);
    }
  }
}
