/**
 * Names of the streams and subjects every service agrees on. The topology itself (retention,
 * replicas, consumers) is declared in @tollstream/messaging; the names live here with the contracts.
 */
export const Streams = {
  /** Every accepted toll transaction, partitioned by station: tolls.tx.<partition>. */
  transactions: 'TOLL_TX',
  /** Records that could not be accepted or processed, with the reason: tolls.dlq.<source>. */
  deadLetters: 'TOLL_DLQ',
  /**
   * Window results of the windower: tolls.agg.spend.<account shard>, tolls.agg.traffic.<partition>,
   * and records too late for any window: tolls.agg.late.<partition>.
   */
  aggregates: 'TOLL_AGG',
  /** Alerts for customers and operations: tolls.alerts.<kind>. */
  alerts: 'TOLL_ALERTS',
  /** Changes of account state made through the account API (e.g. spending thresholds): tolls.accounts.<kind>. */
  accounts: 'TOLL_ACCOUNTS',
} as const;

/** The windower's aggregates. */
export type WindowedAggregate = 'spend' | 'traffic';

/** Kinds of alert, each its own subject so consumers can filter. */
export type AlertKind = 'spending' | 'traffic';

export const Subjects = {
  transactionsAll: 'tolls.tx.>',
  transactionPartition: (partition: number): string => `tolls.tx.${partition}`,
  deadLettersAll: 'tolls.dlq.>',
  deadLetter: (source: string): string => `tolls.dlq.${source}`,
  aggregatesAll: 'tolls.agg.>',
  customerSpendAll: 'tolls.agg.spend.>',
  /**
   * Billing's input for the accounts of one shard (hash(account) mod shard count), in one total
   * order: the windower's CustomerSpendBatch messages and the AccountService's
   * SpendingThresholdCommand records (header RECORD_KIND_HEADER = 'threshold-command'; ADR 0013).
   */
  customerSpendShard: (shard: number): string => `tolls.agg.spend.${shard}`,
  /**
   * Core NATS (not JetStream): questions to the billing instance that owns a spend shard (its
   * accounts' state in memory). Only the owner subscribes.
   */
  billingShardQueries: (shard: number): string => `tolls.billing.query.${shard}`,
  stationTrafficAll: 'tolls.agg.traffic.>',
  stationTrafficPartition: (partition: number): string => `tolls.agg.traffic.${partition}`,
  lateTransactionsAll: 'tolls.agg.late.>',
  /**
   * Transactions of one partition that came later than the allowed lateness of an aggregate's
   * windows (TransactionBatch): billing applies late spend from here, the warehouse has them anyway.
   */
  lateTransactions: (aggregate: WindowedAggregate, partition: number): string => `tolls.agg.late.${aggregate}.${partition}`,
  alertsAll: 'tolls.alerts.>',
  alert: (kind: AlertKind): string => `tolls.alerts.${kind}`,
  accountEventsAll: 'tolls.accounts.>',
  /** SpendingThresholdChanged events (tolls.accounts.v1), one per change of an account's threshold. */
  spendingThresholdChanges: 'tolls.accounts.thresholds',
  /**
   * Core NATS (not JetStream): notifications of one account, published by the notifier after the
   * inbox write, so every replica can push them to its live subscribers. The token is the account id
   * escaped to [A-Za-z0-9_=-] (kvKeyOfAccount of @tollstream/stores).
   */
  notificationsLive: (accountToken: string): string => `tolls.notifications.live.${accountToken}`,
} as const;

/**
 * Header naming what a message on a subject carrying several kinds of record is. Absent on the
 * windower's spend batches (the default kind of tolls.agg.spend.<shard>).
 */
export const RECORD_KIND_HEADER = 'Tollstream-Record';

/** Kinds of record on tolls.agg.spend.<shard> besides the windower's spend batches. */
export const SpendShardRecordKinds = {
  thresholdCommand: 'threshold-command',
} as const;

/** The trailing number of a subject such as tolls.agg.spend.3; undefined if it has none. */
export function trailingNumberOfSubject(subject: string): number | undefined {
  const match = /\.(\d+)$/.exec(subject);
  return match ? Number(match[1]) : undefined;
}

/** Parses the partition number out of a tolls.tx.<partition> subject; undefined if it is not one. */
export function partitionOfSubject(subject: string): number | undefined {
  const match = /^tolls\.tx\.(\d+)$/.exec(subject);
  return match ? Number(match[1]) : undefined;
}
