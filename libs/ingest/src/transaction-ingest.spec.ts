import { RejectionCode, TransactionStatus, type IngestedTransaction } from '@tollstream/contracts';
import { aTollTransaction as aTransaction } from '@tollstream/testing';
import { TransactionIngest, type RejectedRecordSink } from './transaction-ingest';
import type { AppendOutcome } from './transaction-log';
import { isoCurrencies } from './validation';

// Unit test of the orchestration only: the real append path is tested against nats-server.
describe('TransactionIngest', () => {
  const now = new Date('2026-11-22T10:05:00Z').getTime();
  const principal = { name: 'north', stationIds: new Set(['st-001', 'st-002']) };

  function setUp(outcomeFor: (record: IngestedTransaction) => AppendOutcome) {
    const tallies: string[] = [];
    const appended: Array<{ partition: number; ids: string[] }> = [];
    const deadLettered: string[] = [];
    const sink: RejectedRecordSink = {
      deadLetter: async ({ transaction, rejection }) => {
        deadLettered.push(`${transaction.transactionId}:${rejection.field}`);
      },
    };
    const ingest = new TransactionIngest({
      policy: { maxAmountMinor: 10_000, maxClockSkewMs: 60_000, acceptanceHorizonMs: 3600_000, currencies: isoCurrencies },
      partitionOf: (stationId) => (stationId === 'st-001' ? 0 : 1),
      appender: {
        append: async (partition, records) => {
          appended.push({ partition, ids: records.map((r) => r.transaction?.transactionId ?? '') });
          return records.map(outcomeFor);
        },
      },
      rejectedSink: sink,
      observer: { recorded: (status, reason, count) => tallies.push(`${TransactionStatus[status]}/${reason}=${count}`) },
      now: () => now,
    });
    return { ingest, appended, deadLettered, tallies };
  }

  it('answers one result per record in request order, grouping valid records by partition', async () => {
    const { ingest, appended, deadLettered, tallies } = setUp((record) =>
      record.transaction?.transactionId === 'd' ? 'duplicate' : 'accepted',
    );
    const results = await ingest.submit(principal, [
      aTransaction({ transactionId: 'a', stationId: 'st-001' }),
      aTransaction({ transactionId: 'b', stationId: 'st-002', amountMinor: 10_001 }),
      aTransaction({ transactionId: 'c', stationId: 'st-002' }),
      aTransaction({ transactionId: 'd', stationId: 'st-001' }),
      aTransaction({ transactionId: 'e', stationId: 'st-999' }),
    ]);
    expect(results.map((r) => [r.transactionId, TransactionStatus[r.status]])).toEqual([
      ['a', 'TRANSACTION_STATUS_ACCEPTED'],
      ['b', 'TRANSACTION_STATUS_REJECTED'],
      ['c', 'TRANSACTION_STATUS_ACCEPTED'],
      ['d', 'TRANSACTION_STATUS_DUPLICATE'],
      ['e', 'TRANSACTION_STATUS_REJECTED'],
    ]);
    expect(results[1]).toMatchObject({ rejectionCode: RejectionCode.REJECTION_CODE_INVALID_FIELD, field: 'amount_minor' });
    expect(results[4]).toMatchObject({ rejectionCode: RejectionCode.REJECTION_CODE_PERMISSION_DENIED, field: 'station_id' });
    expect(appended).toEqual(
      expect.arrayContaining([
        { partition: 0, ids: ['a', 'd'] },
        { partition: 1, ids: ['c'] },
      ]),
    );
    expect(deadLettered.sort()).toEqual(['b:amount_minor', 'e:station_id']);
    expect(tallies.sort()).toEqual([
      'TRANSACTION_STATUS_ACCEPTED/=2',
      'TRANSACTION_STATUS_DUPLICATE/=1',
      'TRANSACTION_STATUS_REJECTED/INVALID_FIELD=1',
      'TRANSACTION_STATUS_REJECTED/PERMISSION_DENIED=1',
    ]);
  });

  it('reports records the stream could not confirm as retryable rejections', async () => {
    const { ingest } = setUp(() => 'unavailable');
    const [result] = await ingest.submit(principal, [aTransaction()]);
    expect(result.status).toBe(TransactionStatus.TRANSACTION_STATUS_REJECTED);
    expect(result.rejectionCode).toBe(RejectionCode.REJECTION_CODE_UNAVAILABLE);
    expect(result.reason).toContain('retry');
  });
});
