import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Streams, Subjects } from '@tollstream/contracts';

/** What the platform needs from the broker, declared once and provisioned by every service at start-up. */
export interface TopologyOptions {
  /** Partitions of the transaction stream (tolls.tx.<p>). Fixed for the life of a stream: see docs/adr. */
  transactionPartitions: number;
  /** Stream replicas: 1 locally, 3 on a production cluster. */
  replicas: number;
  /** How long transactions stay in the stream (replays, new consumers). */
  transactionRetentionMs: number;
  /** JetStream Nats-Msg-Id duplicate window. */
  duplicateWindowMs: number;
  /** How long window results and alerts stay in their streams (replays by billing, traffic, warehouse). */
  aggregateRetentionMs: number;
  /** How long dead letters are kept for inspection and re-drive (TOLL_DLQ_RETENTION_MS). */
  deadLetterRetentionMs: number;
  /** How long account state changes (thresholds) are kept. */
  accountEventRetentionMs: number;
  /** Largest message the streams accept (a packed TransactionBatch must fit). */
  maxMessageBytes: number;
}

export const defaultTopologyOptions: TopologyOptions = {
  transactionPartitions: 8,
  replicas: 1,
  transactionRetentionMs: 7 * 24 * 3600_000,
  duplicateWindowMs: 10 * 60_000,
  deadLetterRetentionMs: 30 * 24 * 3600_000,
  accountEventRetentionMs: 30 * 24 * 3600_000,
  aggregateRetentionMs: 7 * 24 * 3600_000,
  maxMessageBytes: 1024 * 1024,
};

export interface Topology {
  options: TopologyOptions;
  streams: Array<Partial<StreamConfig> & Pick<StreamConfig, 'name' | 'subjects'>>;
}

const nanos = (ms: number): number => ms * 1_000_000;

export function declareTopology(overrides: Partial<TopologyOptions> = {}): Topology {
  const options = { ...defaultTopologyOptions, ...overrides };
  if (!Number.isInteger(options.transactionPartitions) || options.transactionPartitions < 1) {
    throw new Error(`transactionPartitions must be a positive integer, got ${options.transactionPartitions}`);
  }
  return {
    options,
    streams: [
      {
        name: Streams.transactions,
        subjects: [Subjects.transactionsAll],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: options.replicas,
        max_age: nanos(options.transactionRetentionMs),
        duplicate_window: nanos(options.duplicateWindowMs),
        max_msg_size: options.maxMessageBytes,
        discard: DiscardPolicy.Old,
      },
      {
        name: Streams.aggregates,
        subjects: [Subjects.aggregatesAll],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: options.replicas,
        max_age: nanos(options.aggregateRetentionMs),
        duplicate_window: nanos(options.duplicateWindowMs),
        max_msg_size: options.maxMessageBytes,
        discard: DiscardPolicy.Old,
      },
      {
        name: Streams.alerts,
        subjects: [Subjects.alertsAll],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: options.replicas,
        max_age: nanos(options.aggregateRetentionMs),
        duplicate_window: nanos(options.duplicateWindowMs),
        max_msg_size: options.maxMessageBytes,
        discard: DiscardPolicy.Old,
      },
      {
        name: Streams.accounts,
        subjects: [Subjects.accountEventsAll],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: options.replicas,
        // Account state changes are the record of what customers asked for: a month, like dead letters by default.
        max_age: nanos(options.accountEventRetentionMs),
        duplicate_window: nanos(options.duplicateWindowMs),
        max_msg_size: options.maxMessageBytes,
        discard: DiscardPolicy.Old,
      },
      {
        name: Streams.deadLetters,
        subjects: [Subjects.deadLettersAll],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: options.replicas,
        max_age: nanos(options.deadLetterRetentionMs),
        duplicate_window: nanos(options.duplicateWindowMs),
        // A dead letter carries the original bytes plus the reason.
        max_msg_size: options.maxMessageBytes + 64 * 1024,
        discard: DiscardPolicy.Old,
      },
    ],
  };
}

/**
 * Creates missing streams and brings existing ones to the declared config. Safe to run from every
 * replica of every service at start-up, concurrently.
 */
export async function provisionTopology(jsm: JetStreamManager, topology: Topology): Promise<void> {
  for (const stream of topology.streams) {
    try {
      const info = await jsm.streams.info(stream.name);
      const current = info.config;
      const differs = (Object.keys(stream) as Array<keyof StreamConfig>).some(
        (key) => JSON.stringify(current[key]) !== JSON.stringify(stream[key]),
      );
      if (differs) await jsm.streams.update(stream.name, { ...current, ...stream });
    } catch (error) {
      if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.StreamNotFound) throw error;
      try {
        await jsm.streams.add(stream);
      } catch (addError) {
        // Another replica created it between our info and add: fine as long as it exists now.
        await jsm.streams.info(stream.name).catch(() => {
          throw addError;
        });
      }
    }
  }
}
