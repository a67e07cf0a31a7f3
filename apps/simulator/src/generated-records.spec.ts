// The generator's records checked against the ingestor's own validation (libs/ingest): valid ones pass,
// each malformed one is rejected naming the field the generator labelled it with.
import { isoCurrencies, validateTransaction, type ValidationPolicy } from '@tollstream/ingest';
import { buildTrafficModel, TrafficGenerator } from '@tollstream/simulator';

const policy: ValidationPolicy = { maxAmountMinor: 1_000_000, maxClockSkewMs: 300_000, acceptanceHorizonMs: 72 * 3_600_000, currencies: isoCurrencies };
const start = Date.UTC(2026, 10, 18, 12);
const model = buildTrafficModel({ seed: 'validation', stations: 6, accounts: 300 });

it('generates records the ingestor accepts, and malformed ones it rejects for the labelled field', () => {
  const generator = new TrafficGenerator(model, { recordsPerSecond: 200, pattern: 'realistic', faults: { malformed: 0.05 } });
  const fields = new Map<string, number>();
  let valid = 0;
  for (const batch of generator.generate(start, start + 60_000)) {
    for (const record of batch.transactions) {
      const expected = batch.expectedRejections.get(record.transactionId);
      const rejection = validateTransaction(record, policy, start + 60_000);
      expect({ id: record.transactionId, field: rejection?.field }).toEqual({ id: record.transactionId, field: expected });
      if (expected) fields.set(expected, (fields.get(expected) ?? 0) + 1);
      else valid++;
    }
  }
  const report = generator.report();
  expect(valid).toBe(report.validRecords);
  expect(Object.fromEntries(fields)).toEqual(report.malformedByField);
  expect([...fields.keys()].sort()).toEqual(['amount_minor', 'currency', 'plate', 'station_id', 'tag_id']);
});
