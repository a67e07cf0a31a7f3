import {
  partitionOfSubject,
  RejectionCode,
  rejectionCodeName,
  Subjects,
  TollTransaction,
  TransactionBatch,
  VehicleClass,
} from './index';

describe('contracts', () => {
  it('round-trips a transaction batch through protobuf bytes without losing money or time', () => {
    const occurredAt = new Date('2026-03-04T14:05:06.789Z');
    const transaction: TollTransaction = {
      transactionId: 'st-17-000042',
      stationId: 'st-17',
      laneId: 'L3',
      tagId: 'TAG-9',
      plate: 'ABC123',
      accountId: 'acct-5',
      vehicleClass: VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE,
      amountMinor: 9_007_199_254_740_991,
      currency: 'USD',
      occurredAt,
    };
    const bytes = TransactionBatch.encode({
      batchId: 'b1',
      transactions: [{ transaction, ingestedAt: occurredAt, partition: 3 }],
    }).finish();
    const decoded = TransactionBatch.decode(bytes);
    expect(decoded.transactions[0].transaction).toEqual(transaction);
    expect(decoded.transactions[0].partition).toBe(3);
  });

  it('names partition subjects and parses them back', () => {
    expect(Subjects.transactionPartition(7)).toBe('tolls.tx.7');
    expect(partitionOfSubject('tolls.tx.7')).toBe(7);
    expect(partitionOfSubject('tolls.dlq.ingestor')).toBeUndefined();
  });

  it('names rejection codes briefly for labels and reports', () => {
    expect(rejectionCodeName(RejectionCode.REJECTION_CODE_PERMISSION_DENIED)).toBe('PERMISSION_DENIED');
    expect(rejectionCodeName(RejectionCode.REJECTION_CODE_UNSPECIFIED)).toBe('UNSPECIFIED');
  });
});
