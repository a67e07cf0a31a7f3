/**
 * What billing applied for the windows ending at one instant that may still be revised (ADR 0013):
 * per account slot, each window's start, currency, revision, amount and count, in columns. A
 * partition keeps one of these per window end until its `final_before` passes that end, then drops
 * it whole. Columns instead of an array per window: at 30,000 results/s about 300,000 windows are
 * revisable at any time, and as arrays they were a steady stream of old-space garbage.
 */
import { grown } from './account-table';

export const NO_WINDOW = -1;

/** A window as the snapshot format writes it. */
export type AppliedWindow = [startMs: number, currency: string, revision: number, amountMinor: number, transactionCount: number];

export class WindowsEndingAt {
  /** The account's first window with this end (an account rarely has more than one). */
  private readonly first = new Map<number, number>();
  private used = 0;
  startMs = new Float64Array(8);
  currency = new Uint16Array(8);
  revision = new Float64Array(8);
  amountMinor = new Float64Array(8);
  transactionCount = new Float64Array(8);
  private next = new Int32Array(8);

  get size(): number {
    return this.used;
  }

  /** The account's window of `startMs` in `currency` (numbers of the shard's tables), or NO_WINDOW. */
  find(slot: number, startMs: number, currency: number): number {
    for (let w = this.first.get(slot) ?? NO_WINDOW; w !== NO_WINDOW; w = this.next[w]) {
      if (this.startMs[w] === startMs && this.currency[w] === currency) return w;
    }
    return NO_WINDOW;
  }

  /** Adds a window of the account after its others (their order is the snapshot's). */
  add(slot: number, startMs: number, currency: number, revision: number, amountMinor: number, transactionCount: number): void {
    if (this.used === this.startMs.length) this.grow(this.used * 2);
    const w = this.used++;
    this.startMs[w] = startMs;
    this.currency[w] = currency;
    this.revision[w] = revision;
    this.amountMinor[w] = amountMinor;
    this.transactionCount[w] = transactionCount;
    this.next[w] = NO_WINDOW;
    let last = this.first.get(slot);
    if (last === undefined) {
      this.first.set(slot, w);
      return;
    }
    while (this.next[last] !== NO_WINDOW) last = this.next[last];
    this.next[last] = w;
  }

  /** The windows by account, in the order they were added (the snapshot's form). */
  entries(idOf: (slot: number) => string, currencyOf: (currency: number) => string): Array<[accountId: string, windows: AppliedWindow[]]> {
    const entries: Array<[string, AppliedWindow[]]> = [];
    for (const [slot, first] of this.first) {
      const windows: AppliedWindow[] = [];
      for (let w = first; w !== NO_WINDOW; w = this.next[w]) {
        windows.push([this.startMs[w], currencyOf(this.currency[w]), this.revision[w], this.amountMinor[w], this.transactionCount[w]]);
      }
      entries.push([idOf(slot), windows]);
    }
    return entries;
  }

  private grow(capacity: number): void {
    this.startMs = grown(this.startMs, capacity);
    this.currency = grown(this.currency, capacity);
    this.revision = grown(this.revision, capacity);
    this.amountMinor = grown(this.amountMinor, capacity);
    this.transactionCount = grown(this.transactionCount, capacity);
    this.next = grown(this.next, capacity);
  }
}
