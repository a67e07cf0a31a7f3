import fc from 'fast-check';
import { mixedHashOfAccount } from '@tollstream/messaging';
import { AccountIndex, AccountTable, MonthKeys, NO_MONTH } from './account-table';
import { monthCertainlyOverAtMs, monthNumberOverAtMs } from './months';
import { NO_WINDOW, WindowsEndingAt } from './revisable-windows';

const monthsOf = (table: AccountTable, slot: number): string[] => {
  const months: string[] = [];
  for (let m = table.firstMonth[slot]; m !== NO_MONTH; m = table.nextMonth[m]) months.push(table.months.textOf(table.month[m]));
  return months;
};

describe('AccountTable (a shard’s accounts in columns)', () => {
  it('keeps each account’s months ordered, and months dropped and added again never share a slot', () => {
    // A model (a sorted list of months per account) against the table, through adds and drops in any order.
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), account: fc.integer({ min: 0, max: 5 }), month: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant('drop' as const), account: fc.integer({ min: 0, max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 300 }), (operations) => {
        const table = new AccountTable();
        const model = new Map<number, Map<number, number>>();
        let position = 0;
        for (const op of operations) {
          const id = `acct-${op.account}`;
          const slot = table.slotOf(id) ?? table.add(id, 'UTC', 0, 0);
          const months = model.get(slot) ?? new Map<number, number>();
          model.set(slot, months);
          if (op.kind === 'add') {
            const number = 24_312 + op.month;
            if (table.findMonth(slot, number) === NO_MONTH) {
              const m = table.addMonth(slot, number, ++position);
              table.totalMinor[m] = position;
              months.set(number, position);
            }
          } else if (months.size > 0) {
            table.dropFirstMonth(slot);
            months.delete(Math.min(...months.keys()));
          }
        }
        let open = 0;
        for (const [slot, months] of model) {
          const expected = [...months.keys()].sort((a, b) => a - b);
          expect(monthsOf(table, slot)).toEqual(expected.map((number) => table.months.textOf(number)));
          for (const number of expected) expect(table.totalMinor[table.findMonth(slot, number)]).toBe(months.get(number));
          open += expected.length;
        }
        expect(table.openMonths).toBe(open);
      }),
      { numRuns: 200 },
    );
  });

  it('grows past its first capacity and keeps every account’s columns', () => {
    const table = new AccountTable();
    for (let i = 0; i < 1_000; i++) {
      const slot = table.add(`acct-${i}`, i % 2 === 0 ? 'UTC' : 'Europe/Berlin', i, i * 10);
      table.setThreshold(slot, i % 3 === 0 ? { amountMinor: i + 1, currency: 'EUR', version: 1, setAtMs: i, effectiveFromMonth: '2026-12' } : undefined);
    }
    expect(table.size).toBe(1_000);
    const slot = table.slotOf('acct-999') as number;
    expect(table.idOf(slot)).toBe('acct-999');
    expect(table.timeZoneOf(slot)).toBe('Europe/Berlin');
    expect(table.createdAtMs[slot]).toBe(9_990);
    expect(table.thresholdOf(slot)).toEqual({ amountMinor: 1_000, currency: 'EUR', version: 1, setAtMs: 999, effectiveFromMonth: '2026-12' });
    expect(table.thresholdOf(table.slotOf('acct-998') as number)).toBeUndefined();
    expect(table.currencyOf(slot)).toBeUndefined();
  });

  it('holds thresholds apart: cleared entries are reused without touching another account’s', () => {
    const table = new AccountTable();
    const threshold = (amountMinor: number) => ({ amountMinor, currency: 'EUR', version: amountMinor, setAtMs: amountMinor, effectiveFromMonth: '2026-12' });
    const slots = Array.from({ length: 200 }, (_, i) => table.add(`acct-${i}`, 'UTC', 0, 0));
    const model = new Map<number, number>();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 199 }), fc.option(fc.integer({ min: 1, max: 1_000_000 }))), { maxLength: 400 }), (changes) => {
        for (const [index, amount] of changes) {
          table.setThreshold(slots[index], amount === null ? undefined : threshold(amount));
          if (amount === null) model.delete(index);
          else model.set(index, amount);
        }
        for (const [index, slot] of slots.entries()) {
          const amount = model.get(index);
          expect(table.thresholdOf(slot)).toEqual(amount === undefined ? undefined : threshold(amount));
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe('AccountIndex (account id → slot, open addressing)', () => {
  it('finds every indexed id at its slot and no other id, through rehashes, with ids of any text', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 6 }), fc.nat(5_000).map((n) => `acct-${n}`)), { maxLength: 400 }), fc.array(fc.string({ maxLength: 12 }), { maxLength: 50 }), (accountIds, others) => {
        const ids: string[] = [];
        const index = new AccountIndex(ids);
        for (const accountId of accountIds) {
          expect(index.get(accountId)).toBeUndefined();
          ids.push(accountId);
          index.add(ids.length - 1);
        }
        accountIds.forEach((accountId, slot) => expect(index.get(accountId)).toBe(slot));
        // A copy of the text (another string object) finds the same slot.
        accountIds.forEach((accountId, slot) => expect(index.get([...accountId].join(''))).toBe(slot));
        for (const other of others) expect(index.get(other)).toBe(accountIds.includes(other) ? accountIds.indexOf(other) : undefined);
      }),
    );
  });

  it('holds a hundred thousand sequential ids with short probes (the hash spreads ids that differ in their last digits)', () => {
    const ids: string[] = [];
    const index = new AccountIndex(ids);
    for (let n = 0; n < 100_000; n++) {
      ids.push(`acct-${String(n).padStart(7, '0')}`);
      index.add(n);
    }
    // Buckets of the low 17 bits (the table's size at this count): a good spread leaves few empty.
    const buckets = new Uint8Array(1 << 17);
    for (const id of ids) buckets[mixedHashOfAccount(id) & ((1 << 17) - 1)] = 1;
    const used = buckets.reduce((sum, b) => sum + b, 0);
    // Random placement of 100,000 in 131,072 fills 1 - e^(-0.763) ≈ 53.4 % of them.
    expect(used / buckets.length).toBeGreaterThan(0.5);
    expect(index.get('acct-0099999')).toBe(99_999);
    expect(index.get('acct-0100000')).toBeUndefined();
  });
});

describe('MonthKeys', () => {
  it('numbers months in their order and back, and agrees with monthCertainlyOverAtMs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1970, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1970, max: 9999 }), fc.integer({ min: 1, max: 12 }), (y1, m1, y2, m2) => {
        const keys = new MonthKeys();
        const a = `${y1}-${String(m1).padStart(2, '0')}`;
        const b = `${y2}-${String(m2).padStart(2, '0')}`;
        expect(Math.sign(keys.numberOf(a) - keys.numberOf(b))).toBe(a < b ? -1 : a > b ? 1 : 0);
        expect(new MonthKeys().textOf(keys.numberOf(a))).toBe(a);
        expect(monthNumberOverAtMs(keys.numberOf(a))).toBe(monthCertainlyOverAtMs(a));
      }),
    );
    expect(() => new MonthKeys().numberOf('2026-13')).toThrow(/not a month/);
  });
});

describe('WindowsEndingAt (revisable windows of one window end)', () => {
  it('finds a window by account, start and currency, keeps each account’s windows in the order added, and grows', () => {
    const windows = new WindowsEndingAt();
    for (let slot = 0; slot < 100; slot++) windows.add(slot, 1_000, 1, 1, slot, 1);
    windows.add(7, 500, 1, 2, 70, 3);
    windows.add(7, 1_000, 2, 1, 71, 1);
    expect(windows.size).toBe(102);
    const found = windows.find(7, 500, 1);
    expect(found).not.toBe(NO_WINDOW);
    expect([windows.revision[found], windows.amountMinor[found], windows.transactionCount[found]]).toEqual([2, 70, 3]);
    expect(windows.find(7, 500, 2)).toBe(NO_WINDOW);
    expect(windows.find(100, 1_000, 1)).toBe(NO_WINDOW);
    const entries = windows.entries(
      (slot) => `acct-${slot}`,
      (currency) => ['', 'EUR', 'USD'][currency],
    );
    expect(entries).toHaveLength(100);
    expect(entries[7]).toEqual([
      'acct-7',
      [
        [1_000, 'EUR', 1, 7, 1],
        [500, 'EUR', 2, 70, 3],
        [1_000, 'USD', 1, 71, 1],
      ],
    ]);
  });
});
