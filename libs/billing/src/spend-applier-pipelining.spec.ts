import type { JetStreamClient } from '@nats-io/jetstream';
import type { AccountSpendDocument, AccountSpendStore, AccountUpdate } from '@tollstream/stores';
import type { BillingPolicy } from './account-spend';
import { SpendApplier } from './spend-applier';
import type { SpendEntry } from './spend-entries';

const policy: BillingPolicy = { operatorTimeZone: 'UTC', ledgerRetentionMs: 35 * 86_400_000 };
const NOV = Date.UTC(2026, 10, 10, 12);

/** An in-memory store that records overlapping updates of one account and of all accounts. */
class SlowStore implements AccountSpendStore {
  readonly backend = 'nats-kv' as const;
  readonly documents = new Map<string, AccountSpendDocument>();
  readonly order: string[] = [];
  /** Accounts in the order their updates started (order: in the order they finished). */
  readonly started: string[] = [];
  private readonly running = new Set<string>();
  overlapping = 0;
  inFlight = 0;
  maxInFlight = 0;
  failNext = new Set<string>();

  async update<R>(accountId: string, update: AccountUpdate<R>): Promise<R> {
    if (this.running.has(accountId)) this.overlapping++;
    this.started.push(accountId);
    this.running.add(accountId);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 5));
      if (this.failNext.delete(accountId)) throw new Error(`store down for ${accountId}`);
      const current = this.documents.get(accountId);
      const { next, result } = update.apply(current ? (JSON.parse(JSON.stringify(current)) as AccountSpendDocument) : undefined);
      if (next) this.documents.set(accountId, next);
      this.order.push(accountId);
      return result;
    } finally {
      this.running.delete(accountId);
      this.inFlight--;
    }
  }
  async read(accountId: string): Promise<AccountSpendDocument | undefined> {
    return this.documents.get(accountId);
  }
  async listMonths(): Promise<never[]> {
    return [];
  }
  async accountsWithOutbox(): Promise<string[]> {
    return [];
  }
  async close(): Promise<void> {
    /* nothing */
  }
}

function entry(accountId: string, window: number, revision: number, amountMinor: number): SpendEntry {
  return {
    accountId,
    currency: 'USD',
    ledgerKey: `p0/${window}-${window + 1}`,
    revision,
    amountMinor,
    transactionCount: 1,
    monthInstantMs: NOV + window,
    occurredAtMs: NOV + window,
    sourceId: `${accountId}/w${window}r${revision}`,
  };
}

describe('SpendApplier with rounds applied concurrently (pipelined rounds)', () => {
  const js = { publish: () => Promise.reject(new Error('no alerts expected')) } as unknown as JetStreamClient;

  it('never updates one account from two batches at once, shares the update slots, and loses nothing', async () => {
    const store = new SlowStore();
    const applier = new SpendApplier({ store, js, policy, accountConcurrency: 8, now: () => NOV + 60_000 });
    // 12 batches in flight at once, each touching 20 of 30 accounts (so most accounts are in several batches).
    const batches = Array.from({ length: 12 }, (_, b) => Array.from({ length: 20 }, (_, i) => entry(`acct-${(b * 7 + i) % 30}`, b * 100 + i, 1, 10)));
    const results = await Promise.all(batches.map((batch) => applier.applyEntries(batch)));
    expect(store.overlapping).toBe(0);
    expect(store.maxInFlight).toBeLessThanOrEqual(8);
    expect(results.reduce((sum, result) => sum + result.accounts, 0)).toBe(12 * 20);
    let total = 0;
    for (const document of store.documents.values()) total += document.months['2026-11']?.totalMinor ?? 0;
    expect(total).toBe(12 * 20 * 10);
  });

  it('applies an account of a later batch after its update of an earlier batch, even when that one failed', async () => {
    const store = new SlowStore();
    const applier = new SpendApplier({ store, js, policy, accountConcurrency: 4, now: () => NOV + 60_000 });
    store.failNext.add('acct-a');
    const first = applier.applyEntries([entry('acct-a', 1, 1, 100), entry('acct-b', 1, 1, 100)]);
    const second = applier.applyEntries([entry('acct-a', 2, 1, 50)]);
    // The failed batch rejects only after its other accounts settled (so its nak follows every update it made).
    await expect(first).rejects.toThrow('store down for acct-a');
    expect(store.documents.get('acct-b')?.months['2026-11']?.totalMinor).toBe(100);
    await second;
    expect(store.documents.get('acct-a')?.months['2026-11']?.totalMinor).toBe(50);
    // Redelivery of the failed batch applies it once; a duplicate changes nothing.
    await applier.applyEntries([entry('acct-a', 1, 1, 100), entry('acct-b', 1, 1, 100)]);
    await applier.applyEntries([entry('acct-a', 1, 1, 100)]);
    expect(store.documents.get('acct-a')?.months['2026-11']?.totalMinor).toBe(150);
    expect(store.documents.get('acct-b')?.months['2026-11']?.totalMinor).toBe(100);
    expect(store.overlapping).toBe(0);
  });

  it('gives urgent batches (spend that may raise an alert) the next free update slots, ahead of queued batches', async () => {
    const store = new SlowStore();
    const applier = new SpendApplier({ store, js, policy, accountConcurrency: 2, now: () => NOV + 60_000 });
    const normal = Array.from({ length: 10 }, (_, b) => applier.applyEntries([entry(`acct-n${b}`, b, 1, 10), entry(`acct-m${b}`, b, 1, 10)]));
    const urgent = applier.applyEntries([entry('acct-urgent', 1, 1, 10)], { urgent: true });
    await Promise.all([...normal, urgent]);
    // Two slots: the first batch's two accounts were running; the urgent account had the next slot.
    expect(store.started.indexOf('acct-urgent')).toBe(2);
    expect(store.order).toHaveLength(21);
    expect(store.maxInFlight).toBeLessThanOrEqual(2);
  });

  it('tells which arriving spend may raise an alert, from the headroom its updates and threshold changes left', async () => {
    const store = new SlowStore();
    const applier = new SpendApplier({ store, js, policy, accountConcurrency: 4, now: () => NOV + 60_000 });
    applier.thresholdChanged('acct-a', 1_000);
    expect(applier.arrived([entry('acct-a', 1, 1, 600), entry('acct-b', 1, 1, 5_000)])).toEqual(new Set());
    expect(applier.arrived([entry('acct-a', 2, 1, 500)])).toEqual(new Set(['acct-a']));
    // Without the threshold in the store, applying raises no alert; the watch learns "no threshold".
    await applier.applyEntries([entry('acct-a', 1, 1, 600), entry('acct-a', 2, 1, 500)]);
    expect(applier.arrived([entry('acct-a', 3, 1, 5_000)])).toEqual(new Set());
  });

  it("makes an account's earlier queued update urgent when urgent work for the account arrives (it must go first)", async () => {
    const store = new SlowStore();
    const applier = new SpendApplier({ store, js, policy, accountConcurrency: 1, now: () => NOV + 60_000 });
    const normal = Array.from({ length: 8 }, (_, b) => applier.applyEntries([entry(`acct-n${b}`, b, 1, 10)]));
    const earlier = applier.applyEntries([entry('acct-a', 1, 1, 600)]); // queued behind the 8
    const urgent = applier.applyEntries([entry('acct-a', 2, 1, 600)], { urgent: true });
    await Promise.all([...normal, earlier, urgent]);
    // One slot: acct-n0 was running; then acct-a's earlier update (promoted); its urgent one asks for
    // a slot only once that settled, so at most one other update comes between.
    expect(store.started.slice(0, 2)).toEqual(['acct-n0', 'acct-a']);
    expect(store.started.lastIndexOf('acct-a')).toBeLessThanOrEqual(3);
    expect(store.order).toHaveLength(10);
    expect(store.documents.get('acct-a')?.months['2026-11']?.totalMinor).toBe(1_200);
  });
});
