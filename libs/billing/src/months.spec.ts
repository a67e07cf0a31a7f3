import { monthOf } from './months';

function uncached(epochMs: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit' }).formatToParts(epochMs);
  const year = parts.find((part) => part.type === 'year')?.value ?? '';
  const month = parts.find((part) => part.type === 'month')?.value ?? '';
  return `${year.padStart(4, '0')}-${month}`;
}

describe('monthOf (memoized by zone and exact instant)', () => {
  it('gives the same month as formatting every time, around month ends in several zones, repeated', () => {
    const zones = ['UTC', 'America/New_York', 'Asia/Kathmandu', 'Pacific/Kiritimati', 'Australia/Lord_Howe'];
    const ends = [Date.UTC(2026, 10, 1), Date.UTC(2026, 11, 1), Date.UTC(2027, 0, 1), Date.UTC(2026, 3, 1)];
    for (let pass = 0; pass < 2; pass++) {
      for (const zone of zones) {
        for (const end of ends) {
          for (let offset = -15 * 3_600_000; offset <= 15 * 3_600_000; offset += 7 * 60_000 + 1) {
            expect(monthOf(end + offset, zone)).toBe(uncached(end + offset, zone));
          }
        }
      }
    }
  });
});
