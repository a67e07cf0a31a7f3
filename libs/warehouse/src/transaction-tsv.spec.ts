import { TransactionBatch, type IngestedTransaction } from '@tollstream/contracts';
import fc from 'fast-check';
import { ingestedTransactions } from './__fixtures__/arbitraries';
import { transactionRows, transactionTsv } from './index';

/** What the generated decoder's path gives for a message: the lines, each ending with '\n'. */
function viaDecoder(data: Uint8Array, seq: number): { body: string; rows: number; oldest: number; invalid: number } {
  const mapped = transactionRows(TransactionBatch.decode(data), seq);
  return { body: mapped.lines.map((line) => `${line}\n`).join(''), rows: mapped.lines.length, oldest: mapped.oldestIngestedAtMs, invalid: mapped.invalid.length };
}

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', 'tab\there', 'new\nline', 'back\\slash', 'cr\rnul\0', 'Zürich Ø 東京', '🚗'),
);
const instant = fc.oneof(
  fc.integer({ min: 1e12, max: 4e12 }).map((ms) => new Date(ms)),
  fc.constantFrom(new Date('1999-01-02T03:04:05.006Z'), new Date(0)),
  // More than ten digits of Unix seconds (written another way by the fast path), the largest Date.
  fc.constantFrom(new Date(2e13 + 120), new Date(8.64e15 - 1), new Date(1e13)),
);
const record = ingestedTransactions(text, fc.option(instant, { nil: undefined }));

describe('transactionTsv (the loader fast path)', () => {
  it('gives exactly the rows of the generated decoder whenever it answers, and answers for ordinary messages', () => {
    fc.assert(
      fc.property(text, fc.array(record, { maxLength: 8 }), fc.integer({ min: 1, max: 2 ** 40 }), (batchId, transactions, seq) => {
        const data = TransactionBatch.encode({ batchId, transactions }).finish();
        const fast = transactionTsv(data, seq);
        const slow = viaDecoder(data, seq);
        if (fast) {
          expect(slow.invalid).toBe(0);
          expect(fast.body.toString('utf8')).toBe(slow.body);
          expect(fast.rowCount).toBe(slow.rows);
          expect(fast.oldestIngestedAtMs).toEqual(slow.oldest);
        } else {
          // Declined: only for what the decoder path must handle (invalid records, old instants, negative numbers).
          const ordinary = transactions.every(
            (r) =>
              r.transaction !== undefined &&
              r.transaction.stationId !== '' &&
              r.transaction.transactionId !== '' &&
              r.transaction.vehicleClass >= 0 &&
              r.transaction.amountMinor >= 0 &&
              (r.transaction.occurredAt?.getTime() ?? 0) >= 1e12 &&
              (r.ingestedAt?.getTime() ?? 0) >= 1e12,
          );
          expect(ordinary).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('handles a message larger than its initial 1 MiB output buffer', () => {
    const transactions: IngestedTransaction[] = Array.from({ length: 12_000 }, (_unused, i) => ({
      transaction: { transactionId: `t-${i}`, stationId: 's', laneId: '', tagId: '', plate: `${'\t'.repeat(i % 3)}${'p'.repeat(100)}`, accountId: 'a', vehicleClass: 2, amountMinor: i, currency: 'USD', occurredAt: new Date(1.8e12 + i) },
      ingestedAt: new Date(1.8e12 + 2 * i),
      partition: 1,
    }));
    const data = TransactionBatch.encode({ batchId: 'big', transactions }).finish();
    const fast = transactionTsv(data, 3);
    expect(fast?.body.length).toBeGreaterThan(1 << 20);
    expect(fast?.body.toString()).toBe(viaDecoder(data, 3).body);
  });

  it('takes the batch id written after the records, gives nothing for a heartbeat, and declines malformed input', () => {
    const one: IngestedTransaction = {
      transaction: { transactionId: 't', stationId: 's', laneId: 'l', tagId: 'g', plate: 'p', accountId: 'a', vehicleClass: 1, amountMinor: 5, currency: 'USD', occurredAt: new Date(1.8e12) },
      ingestedAt: new Date(1.8e12 + 1),
      partition: 2,
    };
    const records = TransactionBatch.encode({ batchId: '', transactions: [one] }).finish();
    const id = TransactionBatch.encode({ batchId: 'late-id', transactions: [] }).finish();
    const reordered = Buffer.concat([records, id]);
    expect(transactionTsv(reordered, 9)?.body.toString()).toBe(viaDecoder(reordered, 9).body);
    expect(transactionTsv(reordered, 9)?.body.toString()).toMatch(/\t9\tlate-id\n$/);
    expect(transactionTsv(TransactionBatch.encode({ batchId: 'heartbeat', transactions: [] }).finish(), 1)?.rowCount).toBe(0);
    expect(transactionTsv(records.subarray(0, records.length - 3), 1)).toBeUndefined();
    expect(transactionTsv(Buffer.from([0xff, 0xff, 0xff]), 1)).toBeUndefined();
    const transaction = { transactionId: 't', stationId: 's', laneId: 'l', tagId: 'g', plate: 'ÿÿ', accountId: 'a', vehicleClass: 1, amountMinor: 5, currency: 'USD', occurredAt: new Date(1.8e12) };
    const badUtf8 = Buffer.from(TransactionBatch.encode({ batchId: '', transactions: [{ ...one, transaction }] }).finish());
    const at = badUtf8.indexOf(Buffer.from('ÿÿ'));
    badUtf8[at] = 0xc3;
    badUtf8[at + 1] = 0x28; // an invalid UTF-8 sequence: the decoder would replace it
    badUtf8[at + 2] = 0xc3;
    badUtf8[at + 3] = 0x28;
    expect(transactionTsv(badUtf8, 1)).toBeUndefined();
  });
});
