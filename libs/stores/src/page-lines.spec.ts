import fc from 'fast-check';
import type { MonthTotalRecord } from './account-state-store';
import { monthJson, monthLine } from './page-lines';

const monthRecord = fc.record({
  accountId: fc.string({ minLength: 1, maxLength: 64 }),
  month: fc.integer({ min: 2000, max: 2100 }).chain((year) => fc.integer({ min: 1, max: 12 }).map((month) => `${year}-${String(month).padStart(2, '0')}`)),
  totalMinor: fc.maxSafeInteger().map((n) => n - Math.floor(Number.MAX_SAFE_INTEGER / 2)),
  transactionCount: fc.nat(),
  alertedThresholdVersion: fc.nat(),
  newestEventAtMs: fc.nat(),
  position: fc.nat(),
});

describe('read-model page lines', () => {
  it('a month record is written exactly as JSON.stringify writes it, whatever the account id and values', () => {
    fc.assert(
      fc.property(monthRecord, (record: MonthTotalRecord) => {
        expect(monthJson(record)).toBe(JSON.stringify(record));
        expect(monthLine(record)).toBe(`m\t${record.position}\t${JSON.stringify(record.accountId)}${record.month}\t${JSON.stringify(record)}\n`);
      }),
      { numRuns: 500 },
    );
  });

  it('what a template could get wrong goes through JSON.stringify: non-integers, other months, other fields', () => {
    const base: MonthTotalRecord = { accountId: 'acct-1', month: '2026-12', totalMinor: 100, transactionCount: 1, alertedThresholdVersion: 0, newestEventAtMs: 5, position: 9 };
    for (const odd of [
      { ...base, totalMinor: Number.NaN },
      { ...base, newestEventAtMs: 1.5 },
      { ...base, month: '2026-1"' },
      { ...base, extra: true } as MonthTotalRecord,
    ]) {
      expect(monthJson(odd)).toBe(JSON.stringify(odd));
    }
  });
});
