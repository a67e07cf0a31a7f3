import {
  IngestedTransaction,
  RejectionCode,
  rejectionCodeName,
  TollTransaction,
  TransactionStatus,
  type TransactionResult,
} from '@tollstream/contracts';
import type { AppendOutcome } from './transaction-log';
import type { StationPrincipal } from './station-credentials';
import { validateTransaction, type Rejection, type ValidationPolicy } from './validation';

/** Where accepted records go: the partitioned transaction stream. */
export interface TransactionAppender {
  append(partition: number, records: ReadonlyArray<IngestedTransaction>): Promise<AppendOutcome[]>;
}

/** Where rejected records go, with their reason. */
export interface RejectedRecordSink {
  deadLetter(rejected: { transaction: TollTransaction; rejection: Rejection; principal: StationPrincipal }): Promise<void>;
}

export interface IngestObserver {
  /** Outcomes of one call, tallied: `count` records ended with `status` (and rejection `reason`, else ''). */
  recorded?(status: TransactionStatus, reason: string, count: number): void;
}

export interface TransactionIngestOptions {
  policy: ValidationPolicy;
  partitionOf: (stationId: string) => number;
  appender: TransactionAppender;
  rejectedSink: RejectedRecordSink;
  observer?: IngestObserver;
  now?: () => number;
}

const accepted = (transactionId: string): TransactionResult => ({
  transactionId,
  status: TransactionStatus.TRANSACTION_STATUS_ACCEPTED,
  rejectionCode: RejectionCode.REJECTION_CODE_UNSPECIFIED,
  field: '',
  reason: '',
});

/**
 * One batch from a station in, one result per record out (in order): validation, station
 * authorisation, then durable append; rejected records are dead-lettered before we answer.
 */
export class TransactionIngest {
  private readonly now: () => number;

  constructor(private readonly options: TransactionIngestOptions) {
    this.now = options.now ?? Date.now;
  }

  async submit(principal: StationPrincipal, transactions: ReadonlyArray<TollTransaction>): Promise<TransactionResult[]> {
    const nowMs = this.now();
    const ingestedAt = new Date(nowMs);
    const results = new Array<TransactionResult>(transactions.length);
    const byPartition = new Map<number, Array<{ index: number; record: IngestedTransaction }>>();
    const rejections: Array<Promise<void>> = [];

    transactions.forEach((transaction, index) => {
      const rejection = this.check(principal, transaction, nowMs);
      if (rejection) {
        results[index] = {
          transactionId: transaction.transactionId.slice(0, 128),
          status: TransactionStatus.TRANSACTION_STATUS_REJECTED,
          rejectionCode: rejection.code,
          field: rejection.field,
          reason: rejection.reason,
        };
        rejections.push(this.options.rejectedSink.deadLetter({ transaction, rejection, principal }));
        return;
      }
      const partition = this.options.partitionOf(transaction.stationId);
      const group = byPartition.get(partition) ?? [];
      group.push({ index, record: { transaction, ingestedAt, partition } });
      byPartition.set(partition, group);
    });

    await Promise.all([
      ...rejections,
      ...[...byPartition].map(async ([partition, group]) => {
        const outcomes = await this.options.appender.append(
          partition,
          group.map((entry) => entry.record),
        );
        group.forEach((entry, i) => {
          results[entry.index] = this.resultOf(entry.record, outcomes[i]);
        });
      }),
    ]);
    this.report(results);
    return results;
  }

  private report(results: ReadonlyArray<TransactionResult>): void {
    const recorded = this.options.observer?.recorded;
    if (!recorded) return;
    const tally = new Map<string, { status: TransactionStatus; reason: string; count: number }>();
    for (const result of results) {
      const reason = result.status === TransactionStatus.TRANSACTION_STATUS_REJECTED ? rejectionCodeName(result.rejectionCode) : '';
      const key = `${result.status}|${reason}`;
      const entry = tally.get(key);
      if (entry) entry.count++;
      else tally.set(key, { status: result.status, reason, count: 1 });
    }
    for (const { status, reason, count } of tally.values()) recorded(status, reason, count);
  }

  private check(principal: StationPrincipal, transaction: TollTransaction, nowMs: number): Rejection | undefined {
    const invalid = validateTransaction(transaction, this.options.policy, nowMs);
    if (invalid) return invalid;
    if (!principal.stationIds.has(transaction.stationId)) {
      return {
        code: RejectionCode.REJECTION_CODE_PERMISSION_DENIED,
        field: 'station_id',
        reason: `station_id: this credential may not submit for station ${transaction.stationId}`,
      };
    }
    return undefined;
  }

  private resultOf(record: IngestedTransaction, outcome: AppendOutcome): TransactionResult {
    const transactionId = record.transaction?.transactionId ?? '';
    if (outcome === 'accepted') {
      return accepted(transactionId);
    }
    if (outcome === 'duplicate') {
      return { ...accepted(transactionId), status: TransactionStatus.TRANSACTION_STATUS_DUPLICATE };
    }
    return {
      transactionId,
      status: TransactionStatus.TRANSACTION_STATUS_REJECTED,
      rejectionCode: RejectionCode.REJECTION_CODE_UNAVAILABLE,
      field: '',
      reason: 'the transaction stream did not confirm storage in time; retry this record (retries are deduplicated)',
    };
  }
}
