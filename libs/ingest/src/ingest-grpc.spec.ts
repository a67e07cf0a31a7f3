import { aTollTransaction } from '@tollstream/testing';
import { batchViolation, MAX_BATCH_REF_LENGTH, streamBatchViolation } from './ingest-grpc';

describe('batch-level checks of the station API', () => {
  const limits = { maxRecordsPerBatch: 3 };
  const records = (count: number) => Array.from({ length: count }, (_, i) => aTollTransaction({ transactionId: `tx-${i}` }));

  it('refuses an empty batch and one over the record limit, naming the field', () => {
    expect(batchViolation([], limits)).toEqual({ field: 'transactions', description: 'at least one record is required' });
    expect(batchViolation(records(4), limits)).toEqual({ field: 'transactions', description: 'at most 3 records per batch, got 4' });
    expect(batchViolation(records(1), limits)).toBeUndefined();
    expect(batchViolation(records(3), limits)).toBeUndefined();
  });

  it('bounds the echoed batch reference on the stream, before looking at the records', () => {
    const longRef = 'r'.repeat(MAX_BATCH_REF_LENGTH + 1);
    expect(streamBatchViolation({ batchRef: longRef, transactions: [] }, limits)).toEqual({ field: 'batch_ref', description: 'at most 128 characters, got 129' });
    expect(streamBatchViolation({ batchRef: 'r'.repeat(MAX_BATCH_REF_LENGTH), transactions: records(1) }, limits)).toBeUndefined();
    expect(streamBatchViolation({ batchRef: '', transactions: records(4) }, limits)).toMatchObject({ field: 'transactions' });
  });
});
