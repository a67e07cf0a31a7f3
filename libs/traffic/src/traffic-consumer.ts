import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { Alert, StationTrafficBatch, Streams, Subjects, TrafficCondition } from '@tollstream/contracts';
import { originalMsgIdOf, partitionForStation, type DeadLetterPublisher } from '@tollstream/messaging';
import type { StationReferenceRecord, TrafficDetectionStore, TrafficPartitionState, TrafficReferenceStore } from '@tollstream/stores';
import { applyTrafficBatch, newPartitionState, type DetectorOptions, type DetectorWindow, type ReferenceView, type TrafficAlertOut } from './detector';

/** Reference data held in memory, refreshed from the store. */
export class ReferenceCache implements ReferenceView {
  private records = new Map<string, StationReferenceRecord>();
  private byPartition = new Map<number, string[]>();

  constructor(
    private readonly store: TrafficReferenceStore,
    private readonly partitionCount: number,
  ) {}

  async refresh(): Promise<number> {
    const records = await this.store.list();
    this.records = new Map(records.map((record) => [record.stationId, record]));
    const byPartition = new Map<number, string[]>();
    for (const record of records) {
      const partition = partitionForStation(record.stationId, this.partitionCount);
      byPartition.set(partition, [...(byPartition.get(partition) ?? []), record.stationId]);
    }
    this.byPartition = byPartition;
    return records.length;
  }

  stationsOfPartition(partition: number): string[] {
    return this.byPartition.get(partition) ?? [];
  }

  get(stationId: string): StationReferenceRecord | undefined {
    return this.records.get(stationId);
  }
}

const conditions = {
  below: TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM,
  above: TrafficCondition.TRAFFIC_CONDITION_ABOVE_MAXIMUM,
  'back-within': TrafficCondition.TRAFFIC_CONDITION_BACK_WITHIN_BAND,
} as const;

export function alertMessage(alert: TrafficAlertOut, raisedAtMs: number): Alert {
  return {
    alertId: alert.alertId,
    raisedAt: new Date(raisedAtMs),
    stationTraffic: {
      stationId: alert.stationId,
      slotStart: new Date(alert.startMs),
      slotEnd: new Date(alert.endMs),
      timeZone: alert.timeZone,
      condition: conditions[alert.condition],
      vehicleCount: alert.count,
      expectedMinimum: alert.min,
      expectedMaximum: alert.max ?? 0,
      referenceVersion: alert.version,
    },
  };
}

export interface TrafficConsumerOptions {
  js: JetStreamClient;
  store: TrafficDetectionStore;
  references: ReferenceCache;
  detector: DetectorOptions;
  deadLetters: DeadLetterPublisher;
  /** TOLL_TX_PARTITIONS: one ordered consumer per partition subject. */
  partitions: number;
  maxMessagesPerRound: number;
  observer?: {
    alertPublished?(alert: TrafficAlertOut): void;
    round?(messages: number, evaluations: number, durationMs: number): void;
    batch?(partition: number, watermarkMs: number | undefined): void;
    failed?(error: unknown): void;
  };
}

interface Pulled {
  partition: number;
  msg: JsMsg;
}

/**
 * Reads StationTrafficBatch of every partition (tolls.agg.traffic.<p>) with one ordered consumer per
 * partition, starting after the stream sequence stored in the partition's state, so each partition's
 * input is applied strictly in order, also after a crash (no redelivery can overtake). In rounds,
 * per partition: batches applied (pure detector), alerts published with msgID = alert id and
 * confirmed by the broker, then the state (with the last applied sequence) written with
 * compare-and-set. A crash before the write replays the same input on the same state and reproduces
 * the same alert ids (broker dedup + downstream dedup by id); after it, nothing repeats. A failed
 * round restarts consumption from the stored states.
 */
export class TrafficConsumer {
  private queue: Pulled[] = [];
  private readonly cache = new Map<number, { state: TrafficPartitionState; revision: number | undefined }>();
  private wake: (() => void) | undefined;
  private stopping = false;
  private generation = 0;
  private iterators: ConsumerMessages[] = [];
  private pumps: Array<Promise<void>> = [];
  private loop: Promise<void> | undefined;

  constructor(private readonly options: TrafficConsumerOptions) {}

  async start(): Promise<void> {
    await this.openConsumers();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.closeConsumers();
    this.wake?.();
    await this.loop;
  }

  /** Current states (read-only use: metrics, tests). */
  partitionStates(): TrafficPartitionState[] {
    return [...this.cache.values()].map((entry) => entry.state);
  }

  private async openConsumers(): Promise<void> {
    const generation = ++this.generation;
    for (let partition = 0; partition < this.options.partitions; partition++) {
      const stored = await this.options.store.read(partition);
      this.cache.set(partition, stored ? { state: stored.state, revision: stored.revision } : { state: newPartitionState(partition), revision: undefined });
      const last = stored?.state.lastStreamSequence ?? 0;
      const consumer = await this.options.js.consumers.get(Streams.aggregates, {
        filter_subjects: Subjects.stationTrafficPartition(partition),
        ...(last > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: last + 1 } : { deliver_policy: DeliverPolicy.All }),
      });
      const messages = await consumer.consume({ max_messages: Math.max(64, this.options.maxMessagesPerRound) });
      this.iterators.push(messages);
      this.pumps.push(
        (async () => {
          for await (const msg of messages) {
            if (generation !== this.generation) break;
            this.queue.push({ partition, msg });
            this.wake?.();
          }
        })(),
      );
    }
  }

  private async closeConsumers(): Promise<void> {
    this.generation++;
    await Promise.all(this.iterators.map((messages) => messages.close().catch(() => undefined)));
    await Promise.all(this.pumps);
    this.iterators = [];
    this.pumps = [];
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, 200);
        });
        this.wake = undefined;
        continue;
      }
      const round = this.queue.splice(0, this.options.maxMessagesPerRound);
      const started = Date.now();
      try {
        const evaluations = await this.process(round);
        this.options.observer?.round?.(round.length, evaluations, Date.now() - started);
      } catch (error) {
        this.options.observer?.failed?.(error);
        // Start over from the stored states (the in-memory ones may hold unstored changes).
        await this.closeConsumers();
        this.queue = [];
        this.cache.clear();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        if (this.stopping) break;
        await this.openConsumers().catch((reopenError: unknown) => this.options.observer?.failed?.(reopenError));
      }
    }
  }

  private async process(round: Pulled[]): Promise<number> {
    const byPartition = new Map<number, Array<{ seq: number; watermarkMs?: number; windows: DetectorWindow[] }>>();
    for (const { partition, msg } of round) {
      const list = byPartition.get(partition) ?? [];
      byPartition.set(partition, list);
      let batch: StationTrafficBatch;
      try {
        batch = StationTrafficBatch.decode(msg.data);
      } catch (error) {
        await this.options.deadLetters.publish({ reasonCode: 'UNDECODABLE', reason: `cannot decode StationTrafficBatch: ${(error as Error).message}`, original: msg.data, originalSubject: msg.subject, originalMsgId: originalMsgIdOf(msg) });
        list.push({ seq: msg.seq, windows: [] });
        continue;
      }
      const windows: DetectorWindow[] = batch.windows
        .filter((window) => window.windowStart && window.windowEnd)
        .map((window) => ({
          stationId: window.stationId,
          startMs: (window.windowStart as Date).getTime(),
          endMs: (window.windowEnd as Date).getTime(),
          timeZone: window.timeZone,
          count: window.vehicleCount,
          revision: window.revision,
        }));
      list.push({ seq: msg.seq, watermarkMs: batch.watermark?.getTime(), windows });
    }
    let evaluations = 0;
    for (const [partition, batches] of byPartition) {
      const cached = this.cache.get(partition);
      if (!cached) throw new Error(`no state for partition ${partition}`);
      const alerts: TrafficAlertOut[] = [];
      for (const batch of batches) {
        if (batch.seq <= (cached.state.lastStreamSequence ?? 0)) continue; // already applied
        const outcome = applyTrafficBatch(cached.state, batch, this.options.references, this.options.detector);
        cached.state.lastStreamSequence = batch.seq;
        alerts.push(...outcome.alerts);
        evaluations += outcome.evaluations;
        this.options.observer?.batch?.(partition, batch.watermarkMs);
      }
      const raisedAt = Date.now();
      await Promise.all(
        alerts.map(async (alert) => {
          await this.options.js.publish(Subjects.alert('traffic'), Alert.encode(alertMessage(alert, raisedAt)).finish(), { msgID: alert.alertId });
          this.options.observer?.alertPublished?.(alert);
        }),
      );
      cached.revision = await this.options.store.write(cached.state, cached.revision);
    }
    return evaluations;
  }
}
