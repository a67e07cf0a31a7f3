import { parseTransactionRecord } from '@tollstream/station-sender';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseTollCents, formatWithOffset, generateSampleLines, writeSampleFile, type SampleOptions } from './sample-data';

const now = new Date('2024-05-01T09:00:00Z');
const base: SampleOptions = { count: 2_000, stationIds: ['st-001', 'st-002', 'st-003'], seed: 'demo', now, withFaults: false };
const linesOf = (options: SampleOptions) => [...generateSampleLines(options)];

describe('generateSampleLines', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    expect(linesOf(base)).toEqual(linesOf(base));
    expect(linesOf({ ...base, seed: 'other' })).not.toEqual(linesOf(base));
  });

  it('writes valid, realistic transactions within the hour before now, in time order', () => {
    const lines = linesOf(base);
    expect(lines).toHaveLength(2_000);
    const ids = new Set<string>();
    let previous = 0;
    const classes = new Set<number>();
    for (const line of lines) {
      expect(line.kind).toBe('valid');
      const parsed = parseTransactionRecord(JSON.parse(line.text));
      if (!parsed.ok) throw new Error(parsed.reason);
      const { transaction } = parsed;
      const at = transaction.occurredAt?.getTime() ?? 0;
      expect(at).toBeGreaterThanOrEqual(now.getTime() - 3_600_000);
      expect(at).toBeLessThan(now.getTime());
      expect(at).toBeGreaterThanOrEqual(previous);
      previous = at;
      expect(base.stationIds).toContain(transaction.stationId);
      expect(transaction.currency).toBe('USD');
      expect(Number.isInteger(transaction.amountMinor)).toBe(true);
      expect(transaction.amountMinor).toBeGreaterThanOrEqual(Math.floor((baseTollCents.motorcycle * 0.8) / 5) * 5);
      expect(transaction.amountMinor).toBeLessThanOrEqual(Math.round(baseTollCents.truck_3_plus_axle * 1.5 * 1.25));
      expect(transaction.tagId !== '' || transaction.plate !== '').toBe(true);
      expect(transaction.plate).toMatch(/^([A-Z0-9 -]+)?$/);
      classes.add(transaction.vehicleClass);
      const key = `${transaction.stationId}/${transaction.transactionId}`;
      expect(ids.has(key)).toBe(false);
      ids.add(key);
    }
    expect(classes.size).toBe(6);
  });

  it('adds unparseable lines, resent duplicates and a record the ingestor rejects when asked', () => {
    const lines = linesOf({ ...base, withFaults: true });
    expect(lines).toHaveLength(2_000);
    const count = (kind: string) => lines.filter((line) => line.kind === kind).length;
    expect(count('unparseable')).toBe(20);
    expect(count('duplicate')).toBe(10);
    expect(count('rejected-by-ingestor')).toBe(1);
    for (const line of lines.filter((candidate) => candidate.kind === 'unparseable')) {
      let record: unknown;
      try {
        record = JSON.parse(line.text);
      } catch {
        continue; // truncated JSON
      }
      expect(parseTransactionRecord(record).ok).toBe(false);
    }
    const validTexts = new Set(lines.filter((line) => line.kind === 'valid').map((line) => line.text));
    for (const duplicate of lines.filter((line) => line.kind === 'duplicate')) expect(validTexts.has(duplicate.text)).toBe(true);
    const rejected = lines.find((line) => line.kind === 'rejected-by-ingestor');
    expect(rejected && parseTransactionRecord(JSON.parse(rejected.text)).ok).toBe(true);
  });

  it('refuses a bad count or no station', () => {
    expect(() => linesOf({ ...base, count: -1 })).toThrow(RangeError);
    expect(() => linesOf({ ...base, stationIds: [] })).toThrow(RangeError);
  });
});

describe('formatWithOffset', () => {
  it.each([
    [0, '2024-05-01T08:30:00.250Z'],
    [-300, '2024-05-01T03:30:00.250-05:00'],
    [330, '2024-05-01T14:00:00.250+05:30'],
  ])('formats offset %i', (offset, expected) => {
    const text = formatWithOffset(new Date('2024-05-01T08:30:00.250Z'), offset);
    expect(text).toBe(expected);
    expect(new Date(text).toISOString()).toBe('2024-05-01T08:30:00.250Z');
  });
});

describe('writeSampleFile', () => {
  it('streams the lines to a file and counts them by kind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sample-'));
    try {
      const path = join(dir, 'sample.ndjson');
      const stats = await writeSampleFile(path, { ...base, count: 500, withFaults: true });
      const text = await readFile(path, 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      expect(text.trimEnd().split('\n')).toHaveLength(500);
      expect(stats.valid + stats.unparseable + stats.duplicate + stats['rejected-by-ingestor']).toBe(500);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
