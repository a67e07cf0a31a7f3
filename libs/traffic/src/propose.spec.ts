import { proposeReferences } from './propose';
import { parseReferenceFile } from './reference';

const WEEK = 7 * 86_400_000;
const until = Date.parse('2026-11-23T00:00:00Z'); // a Monday
const slot = (week: number, hour: number) => until - week * WEEK + hour * 3_600_000; // Monday hh:00 UTC of `week` weeks ago

describe('proposeReferences', () => {
  it('takes the median of the same local slot over the weeks (missing = 0) times the ratios; the file loads', () => {
    const rows = [
      { stationId: 'st-1', slotStartMs: slot(1, 8), vehicles: 100 },
      { stationId: 'st-1', slotStartMs: slot(2, 8), vehicles: 80 },
      { stationId: 'st-1', slotStartMs: slot(3, 8), vehicles: 120 },
      { stationId: 'st-1', slotStartMs: slot(1, 9), vehicles: 50 },
    ];
    const { csv, skipped } = proposeReferences(rows, {
      stations: new Map([['st-2', 'Asia/Kolkata']]),
      defaultTimeZone: 'UTC',
      weeks: 3,
      untilMs: until,
      minRatio: 0.5,
      maxRatio: 2,
      effectiveFromMs: until,
    });
    expect(skipped).toEqual([]);
    const lines = csv.trim().split('\n');
    expect(lines).toContain('st-1,2026-11-23T00:00:00.000Z,UTC,30,mon,08:00,50,200');
    expect(lines).toContain('st-1,2026-11-23T00:00:00.000Z,UTC,30,mon,09:00,0,0'); // median of 50, 0, 0
    expect(lines.filter((line) => line.startsWith('st-1,'))).toHaveLength(7 * 48);
    expect(lines.filter((line) => line.startsWith('st-2,'))).toHaveLength(7 * 48);
    expect(parseReferenceFile(csv, 'csv')).toHaveLength(2);
  });

  it('skips stations whose zone is not aligned with the warehouse slots', () => {
    const { skipped } = proposeReferences([], { stations: new Map([['st-np', 'Asia/Kathmandu']]), defaultTimeZone: 'UTC', weeks: 1, untilMs: until, minRatio: 0.5, maxRatio: 0, effectiveFromMs: until });
    expect(skipped).toEqual(['st-np: time zone Asia/Kathmandu is not aligned with the warehouse\'s UTC 30-minute slots']);
  });
});
