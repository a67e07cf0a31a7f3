import fc from 'fast-check';
import { IngestedTransaction, TransactionBatch, VehicleClass } from '@tollstream/contracts';
import { readTransactionBatch, type WindowedRecord } from './transaction-reader';

const anIngested = fc.record({
  transaction: fc.option(
    fc.record({
      transactionId: fc.string({ maxLength: 20 }),
      stationId: fc.string({ maxLength: 20 }),
      laneId: fc.string({ maxLength: 5 }),
      tagId: fc.string({ maxLength: 10 }),
      plate: fc.string({ maxLength: 10 }),
      accountId: fc.string({ maxLength: 20 }),
      vehicleClass: fc.constantFrom(...[0, 1, 2, 3, 4, 5, 6].map((n) => n as VehicleClass)),
      amountMinor: fc.integer({ min: -1_000_000_000, max: 1_000_000_000 }),
      currency: fc.constantFrom('USD', 'EUR', ''),
      occurredAt: fc.option(fc.date({ min: new Date('1990-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }), { nil: undefined }),
    }),
    { nil: undefined },
  ),
  ingestedAt: fc.option(fc.date({ noInvalidDate: true, min: new Date('2000-01-01T00:00:00Z') }), { nil: undefined }),
  partition: fc.nat({ max: 1024 }),
});

describe('readTransactionBatch', () => {
  it('reads exactly the fields the generated decoder reads, for any batch', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 10 }), fc.array(anIngested, { maxLength: 20 }), (batchId, transactions) => {
        const bytes = TransactionBatch.encode({ batchId, transactions }).finish();
        const expected = TransactionBatch.decode(bytes).transactions.filter((ingested) => ingested.transaction);
        const seen: Array<Omit<WindowedRecord, 'encoded'> & { decoded: IngestedTransaction }> = [];
        readTransactionBatch(bytes, (record) => seen.push({ ...record, decoded: IngestedTransaction.decode(record.encoded()) }));
        expect(seen).toHaveLength(expected.length);
        seen.forEach((record, index) => {
          const transaction = expected[index].transaction;
          expect(record.stationId).toBe(transaction?.stationId);
          expect(record.accountId).toBe(transaction?.accountId);
          expect(record.currency).toBe(transaction?.currency);
          expect(record.vehicleClass).toBe(transaction?.vehicleClass);
          expect(record.amountMinor).toBe(transaction?.amountMinor);
          expect(record.occurredAtMs).toEqual(transaction?.occurredAt ? transaction.occurredAt.getTime() : Number.NaN);
          // The forwarded bytes are the whole record.
          expect(record.decoded).toEqual(expected[index]);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('throws on bytes that are not a TransactionBatch', () => {
    expect(() => readTransactionBatch(new Uint8Array([0x12, 0x40, 0x0a]), () => undefined)).toThrow(RangeError);
  });
});
