/**
 * The contract every AccountStateStore adapter must meet; run by each adapter's spec against the
 * real backend (nats-server for KV, MongoDB when one is available).
 */
import type { AccountStateRecord, AccountStateStore, MonthTotalRecord } from '../account-state-store';

export interface StateStoreUnderTest {
  store: AccountStateStore;
  /** Writes one account into the per-result design's store, for the legacy check. */
  writeLegacyAccount(): Promise<void>;
  cleanup(): Promise<void>;
}

const NOW = Date.UTC(2026, 10, 22, 12);

/** The spend shard of each account the contract writes (adapters that keep records by shard are opened with it). */
const SHARD_OF_CONTRACT_ACCOUNT: Readonly<Record<string, number>> = { 'a.1': 0, 'b/2': 0, lister: 2, lister2: 2, replayed: 3, cleared: 4, ahead: 5, never: 6 };
export function contractShardOf(accountId: string): number {
  const shard = SHARD_OF_CONTRACT_ACCOUNT[accountId];
  if (shard === undefined) throw new Error(`the contract writes no account ${JSON.stringify(accountId)}`);
  return shard;
}

function account(accountId: string, position: number, extra: Partial<AccountStateRecord> = {}): AccountStateRecord {
  return { accountId, timeZone: 'Europe/Berlin', currency: 'EUR', thresholdVersion: 0, position, updatedAtMs: NOW + position, ...extra };
}

function month(accountId: string, key: string, totalMinor: number, position: number): MonthTotalRecord {
  return { accountId, month: key, totalMinor, transactionCount: totalMinor / 100, alertedThresholdVersion: 0, newestEventAtMs: NOW, position };
}

export function accountStateStoreContract(name: string, open: () => Promise<StateStoreUnderTest>): void {
  describe(`AccountStateStore contract: ${name}`, () => {
    let under: StateStoreUnderTest;
    let store: AccountStateStore;
    beforeAll(async () => {
      under = await open();
      store = under.store;
    });
    afterAll(async () => {
      await under?.cleanup();
    });

    it('answers nothing for accounts, months and shards never written', async () => {
      expect(await store.readAccount('never')).toBeUndefined();
      expect(await store.readMonth('never', '2026-11')).toBeUndefined();
      expect(await store.listMonths('never', { limit: 10 })).toEqual([]);
      expect(await store.flushedPosition(99)).toBe(0);
    });

    it('writes accounts and months in bulk and reads them back exactly', async () => {
      const threshold = { amountMinor: 50_000, currency: 'EUR', version: 1, setAtMs: NOW, effectiveFromMonth: '2026-11' };
      await store.write(0, 10, {
        accounts: [account('a.1', 10, { threshold, thresholdVersion: 1 }), account('b/2', 7)],
        months: [month('a.1', '2026-10', 1200, 3), month('a.1', '2026-11', 4500, 10), month('b/2', '2026-11', 100, 7)],
      });
      expect(await store.readAccount('a.1')).toEqual(account('a.1', 10, { threshold, thresholdVersion: 1 }));
      expect(await store.readAccount('b/2')).toEqual(account('b/2', 7));
      expect(await store.readMonth('a.1', '2026-11')).toEqual(month('a.1', '2026-11', 4500, 10));
      expect(await store.flushedPosition(0)).toBe(10);
      expect(await store.flushedPosition(1)).toBe(0);
    });

    it('lists months newest first, before a month, with a limit', async () => {
      await store.write(2, 5, { accounts: [account('lister', 5)], months: ['2026-08', '2026-11', '2026-09', '2026-10'].map((key, i) => month('lister', key, 100 * (i + 1), 5)) });
      expect((await store.listMonths('lister', { limit: 10 })).map((m) => m.month)).toEqual(['2026-11', '2026-10', '2026-09', '2026-08']);
      expect((await store.listMonths('lister', { beforeMonth: '2026-10', limit: 1 })).map((m) => m.month)).toEqual(['2026-09']);
      expect(await store.listMonths('lister', { limit: 0 })).toEqual([]);
      // Another account whose id starts alike does not leak in.
      await store.write(2, 6, { accounts: [], months: [month('lister2', '2026-07', 100, 6)] });
      expect((await store.listMonths('lister', { limit: 10 })).map((m) => m.month)).not.toContain('2026-07');
    });

    it('never moves back: a replayed (older) write leaves newer records and the position alone', async () => {
      await store.write(3, 20, { accounts: [account('replayed', 20)], months: [month('replayed', '2026-11', 9000, 20)] });
      await store.write(3, 15, { accounts: [account('replayed', 15)], months: [month('replayed', '2026-11', 5000, 15)] });
      expect(await store.readMonth('replayed', '2026-11')).toEqual(month('replayed', '2026-11', 9000, 20));
      expect((await store.readAccount('replayed'))?.position).toBe(20);
      expect(await store.flushedPosition(3)).toBe(20);
      // The same write again changes nothing either.
      await store.write(3, 20, { accounts: [account('replayed', 20)], months: [month('replayed', '2026-11', 9000, 20)] });
      expect(await store.readMonth('replayed', '2026-11')).toEqual(month('replayed', '2026-11', 9000, 20));
    });

    it('removes a cleared threshold', async () => {
      const threshold = { amountMinor: 100, currency: 'EUR', version: 1, setAtMs: NOW, effectiveFromMonth: '2026-11' };
      await store.write(4, 1, { accounts: [account('cleared', 1, { threshold, thresholdVersion: 1 })], months: [] });
      await store.write(4, 2, { accounts: [account('cleared', 2, { thresholdVersion: 2 })], months: [] });
      const stored = await store.readAccount('cleared');
      expect(stored?.threshold).toBeUndefined();
      expect(stored?.thresholdVersion).toBe(2);
    });

    it('refuses a record beyond the write position and a bad shard', async () => {
      await expect(store.write(5, 3, { accounts: [account('ahead', 4)], months: [] })).rejects.toThrow(/position 4, beyond the write's 3/);
      await expect(store.write(-1, 3, { accounts: [], months: [] })).rejects.toThrow(/shard must be a non-negative integer/);
    });

    it('tells whether the per-result design left accounts behind', async () => {
      expect(await store.legacyAccountsPresent()).toBe(false);
      await under.writeLegacyAccount();
      expect(await store.legacyAccountsPresent()).toBe(true);
    });
  });
}
