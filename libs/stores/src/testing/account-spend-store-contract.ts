/**
 * The contract every AccountSpendStore adapter must meet; run by each adapter's spec against the
 * real backend (nats-server for KV, MongoDB when one is available).
 */
import type { AccountSpendDocument, AccountSpendStore, AccountUpdate, MonthRecord } from '../account-spend-store';

export interface StoreUnderTest {
  store: AccountSpendStore;
  /** Removes what the test wrote (fresh namespace per suite). */
  cleanup(): Promise<void>;
}

const NOW = Date.UTC(2026, 10, 22, 12);

function emptyMonth(month: string): MonthRecord {
  return { month, totalMinor: 0, transactionCount: 0, ledger: {}, ledgerSealed: false, alertedThresholdVersion: 0, newestEventAtMs: 0, updatedAtMs: NOW };
}

function newDocument(accountId: string): AccountSpendDocument {
  return {
    account: { accountId, timeZone: 'UTC', thresholdVersion: 0, openLedgerMonths: [], outbox: [], createdAtMs: NOW, updatedAtMs: NOW },
    months: {},
  };
}

/** Adds `amount` under ledger key `key` of `month` unless the key was applied already; returns whether it applied. */
function addOnce(accountId: string, month: string, key: string, amount: number): AccountUpdate<boolean> {
  return {
    months: () => [month],
    apply: (current) => {
      const document = current ?? newDocument(accountId);
      const record = document.months[month] ?? emptyMonth(month);
      if (record.ledger[key]) return { next: undefined, result: false };
      record.ledger[key] = [1, amount, 1];
      record.totalMinor += amount;
      record.transactionCount += 1;
      document.months[month] = record;
      document.account.updatedAtMs += 1;
      return { next: document, result: true };
    },
  };
}

export function accountSpendStoreContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`AccountSpendStore contract: ${name}`, () => {
    let subject: StoreUnderTest;
    let store: AccountSpendStore;
    beforeAll(async () => {
      subject = await open();
      store = subject.store;
    });
    afterAll(async () => {
      await subject?.cleanup();
    });

    it('knows nothing of an account never written', async () => {
      await expect(store.read('acct-unknown', () => ['2026-11'])).resolves.toBeUndefined();
      await expect(store.listMonths('acct-unknown', { limit: 10 })).resolves.toEqual([]);
    });

    it('creates, reads back and updates an account with its months; an update that returns nothing writes nothing', async () => {
      await expect(store.update('acct-a', addOnce('acct-a', '2026-11', 'w1', 250))).resolves.toBe(true);
      await expect(store.update('acct-a', addOnce('acct-a', '2026-11', 'w1', 250))).resolves.toBe(false);
      await expect(store.update('acct-a', addOnce('acct-a', '2026-12', 'w2', 100))).resolves.toBe(true);
      const document = await store.read('acct-a', () => ['2026-11', '2026-12']);
      expect(document?.account.accountId).toBe('acct-a');
      expect(document?.months['2026-11']).toMatchObject({ month: '2026-11', totalMinor: 250, ledger: { w1: [1, 250, 1] } });
      expect(document?.months['2026-12']).toMatchObject({ totalMinor: 100 });
      // The update sees the months it asks for, as stored by earlier updates.
      const seen = await store.update('acct-a', {
        months: (account) => (account ? ['2026-11'] : []),
        apply: (current) => ({ next: undefined, result: current?.months['2026-11']?.totalMinor }),
      });
      expect(seen).toBe(250);
    });

    it('keeps every field of the document (thresholds, outbox, ledger tuples)', async () => {
      const document = newDocument('acct-fields');
      document.account.currency = 'EUR';
      document.account.timeZone = 'Europe/Lisbon';
      document.account.thresholdVersion = 3;
      document.account.threshold = { amountMinor: 12_345, currency: 'EUR', version: 3, setAtMs: NOW, effectiveFromMonth: '2026-11' };
      document.account.openLedgerMonths = ['2026-10', '2026-11'];
      document.account.outbox = [
        {
          kind: 'spending-alert',
          id: 'spending/acct-fields/2026-11/v3',
          accountId: 'acct-fields',
          month: '2026-11',
          timeZone: 'Europe/Lisbon',
          thresholdMinor: 12_345,
          thresholdVersion: 3,
          totalMinor: 20_000,
          currency: 'EUR',
          breachedAtMs: NOW - 5,
          raisedAtMs: NOW,
        },
      ];
      document.months['2026-11'] = {
        ...emptyMonth('2026-11'),
        totalMinor: 20_000,
        transactionCount: 7,
        ledger: { 'p3/1000-2000': [2, 20_000, 7], 't:st-1/tx%2E1': [1, 0, 1] },
        alertedThresholdVersion: 3,
        newestEventAtMs: NOW - 5,
      };
      await store.update('acct-fields', { months: () => ['2026-11'], apply: () => ({ next: structuredClone(document), result: undefined }) });
      expect(await store.read('acct-fields', () => ['2026-11'])).toMatchObject(document);
    });

    it('lists months newest first, before a month, limited, without ledgers', async () => {
      for (const month of ['2025-12', '2026-01', '2026-02', '2026-03']) {
        await store.update('acct-list', addOnce('acct-list', month, `w-${month}`, 10));
      }
      const all = await store.listMonths('acct-list', { limit: 10 });
      expect(all.map((month) => month.month)).toEqual(['2026-03', '2026-02', '2026-01', '2025-12']);
      expect(all.every((month) => Object.keys(month.ledger).length === 0 && month.totalMinor === 10)).toBe(true);
      const page = await store.listMonths('acct-list', { beforeMonth: '2026-03', limit: 2 });
      expect(page.map((month) => month.month)).toEqual(['2026-02', '2026-01']);
    });

    it('keeps account ids apart that differ only in characters a key cannot hold', async () => {
      const ids = ['acct/ä.1 x', 'acct/ä.1_x', 'acct=2fä.1 x', 'acct.ä.1 x'];
      for (const [index, id] of ids.entries()) await store.update(id, addOnce(id, '2026-11', 'w', index + 1));
      for (const [index, id] of ids.entries()) {
        const document = await store.read(id, () => ['2026-11']);
        expect(document?.account.accountId).toBe(id);
        expect(document?.months['2026-11']?.totalMinor).toBe(index + 1);
      }
    });

    it('loses no update and doubles none under 50 concurrent writers of one account (each also retried twice)', async () => {
      const writes = Array.from({ length: 50 }, (_, index) => index);
      const outcomes = await Promise.all(
        [...writes, ...writes, ...writes].map((index) => store.update('acct-hot', addOnce('acct-hot', '2026-11', `w${index}`, 100 + index))),
      );
      expect(outcomes.filter(Boolean)).toHaveLength(50);
      const month = (await store.read('acct-hot', () => ['2026-11']))?.months['2026-11'];
      expect(month?.transactionCount).toBe(50);
      expect(month?.totalMinor).toBe(writes.reduce((sum, index) => sum + 100 + index, 0));
      expect(Object.keys(month?.ledger ?? {})).toHaveLength(50);
    }, 60_000);

    it('names the accounts with outbox entries so a sweep finds them after a crash', async () => {
      const withOutbox: AccountUpdate<void> = {
        months: () => [],
        apply: (current) => {
          const document = current ?? newDocument('acct-outbox');
          document.account.outbox = [{ kind: 'threshold-changed', id: 'threshold/acct-outbox/v1', accountId: 'acct-outbox', version: 1, changedAtMs: NOW }];
          return { next: document, result: undefined };
        },
      };
      await store.update('acct-outbox', withOutbox);
      expect(await store.accountsWithOutbox()).toContain('acct-outbox');
      await store.update('acct-outbox', {
        months: () => [],
        apply: (current) => {
          if (!current) throw new Error('expected the account');
          current.account.outbox = [];
          return { next: current, result: undefined };
        },
      });
      expect((await store.read('acct-outbox', () => []))?.account.outbox).toEqual([]);
      expect(await store.accountsWithOutbox()).not.toContain('acct-outbox');
    });
  });
}
