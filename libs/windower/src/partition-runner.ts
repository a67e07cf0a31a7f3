import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { Streams, Subjects, TransactionBatch } from '@tollstream/contracts';
import { BackgroundSnapshots, observed, originalMsgIdOf, type DeadLetterPublisher } from '@tollstream/messaging';
import type { CheckpointStore } from './checkpoint-store';
import { PartitionProcessor, type PartitionProcessorOptions, type ProcessedInput, type SnapshotFrameKind } from './partition-processor';

export interface PartitionRunnerSettings {
  /** How often the partition's state is snapshotted (after every output up to then is acknowledged). */
  checkpointIntervalMs: number;
  /** An owned partition without a message for this long gets a heartbeat (an empty batch) appended. */
  heartbeatIntervalMs: number;
  /** Output publishes awaiting their broker acknowledgement before the runner waits (backpressure). */
  maxPublishesInFlight: number;
  /** Name of the partition's checkpoint object (carries the configuration fingerprint). */
  checkpointName: (partition: number) => string;
}

/** What the service counts and logs; every method optional. */
export interface WindowerObserver {
  processed?(partition: number, outcome: ProcessedInput, processor: PartitionProcessor): void;
  emitted?(partition: number, results: number, delayMs: number): void;
  checkpointed?(partition: number, bytes: number, durationMs: number): void;
  restored?(partition: number, fromSequence: number, durationMs: number): void;
  heartbeat?(partition: number): void;
  deadLettered?(partition: number, reason: string): void;
  failed?(partition: number, error: unknown): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const PUBLISH_TIMEOUT_MS = 10_000;

/**
 * Runs the windower for one owned partition: restores its last checkpoint, reads the partition
 * from the next input sequence with an ordered consumer, publishes the outputs, and checkpoints
 * once the outputs up to that input are acknowledged by the broker. Any failure (broker gone,
 * a publish not acknowledged) restarts it from the last checkpoint: outputs repeated by that
 * replay are identical, so JetStream dedup and readers absorb them.
 */
export class PartitionRunner {
  private stopping = false;
  private checkpointOnStop = true;
  private messages?: ConsumerMessages;
  private running?: Promise<void>;
  private lastMessageAt = Date.now();
  private heartbeatTimer?: NodeJS.Timeout;

  constructor(
    readonly partition: number,
    private readonly js: JetStreamClient,
    private readonly checkpoints: CheckpointStore,
    private readonly deadLetters: DeadLetterPublisher,
    private readonly processorOptions: PartitionProcessorOptions,
    private readonly settings: PartitionRunnerSettings,
    private readonly observer: WindowerObserver,
  ) {}

  start(): void {
    this.running = this.loop();
    this.heartbeatTimer = setInterval(() => void this.heartbeatIfIdle(), Math.max(50, this.settings.heartbeatIntervalMs / 2));
    this.heartbeatTimer.unref();
  }

  /** Stops; with `checkpoint`, after a final checkpoint (a graceful hand-over), else at once (lease lost). */
  async stop(checkpoint: boolean): Promise<void> {
    this.stopping = true;
    this.checkpointOnStop = checkpoint;
    clearInterval(this.heartbeatTimer);
    await this.messages?.close();
    await this.running;
  }

  private async loop(): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        await this.runFromCheckpoint();
      } catch (error) {
        if (this.stopping) return;
        this.observer.failed?.(this.partition, error);
        await sleep(Math.min(5_000, 200 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  private async runFromCheckpoint(): Promise<void> {
    const started = performance.now();
    const name = this.settings.checkpointName(this.partition);
    const frames = await this.checkpoints.load(name);
    const processor = frames
      ? PartitionProcessor.restore(this.processorOptions, frames)
      : PartitionProcessor.create(this.processorOptions);
    this.observer.restored?.(this.partition, processor.lastSequence, performance.now() - started);
    if (this.stopping) return;
    const consumer = await this.js.consumers.get(Streams.transactions, {
      filter_subjects: Subjects.transactionPartition(this.partition),
      ...(processor.lastSequence > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: processor.lastSequence + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume({ max_messages: 256 });
    this.messages = messages;
    if (this.stopping) await messages.close();

    let inFlight: Array<Promise<PubAck>> = [];
    let lastCheckpointAt = performance.now();
    let uncheckpointed = false;
    const drain = async () => {
      await Promise.all(inFlight);
      inFlight = [];
    };
    // A checkpoint copies the processor's state and is saved in the background once the outputs up
    // to it are acknowledged: the partition goes on meanwhile (a pause behind the drain and the
    // object store delayed every result of the partition). A failed save fails the runner.
    const background = new BackgroundSnapshots<SnapshotFrameKind>({
      save: (frames) => this.checkpoints.save(name, frames),
      saved: (bytes, durationMs) => this.observer.checkpointed?.(this.partition, bytes, durationMs),
      failed: () => void messages.close(),
    });
    const checkpoint = (): Promise<void> => {
      lastCheckpointAt = performance.now();
      uncheckpointed = false;
      return background.take(processor.snapshotFrames(), inFlight);
    };

    try {
      for await (const message of messages) {
        this.lastMessageAt = Date.now();
        const logTimeMs = Number(message.timestampNanos / 1_000_000n);
        const outcome = processor.process(message.seq, logTimeMs, message.data);
        uncheckpointed = true;
        if (outcome.undecodable) {
          await this.deadLetters.publish({
            reasonCode: 'UNDECODABLE',
            reason: outcome.undecodable,
            original: message.data,
            originalSubject: message.subject,
            originalMsgId: originalMsgIdOf(message),
          });
          this.observer.deadLettered?.(this.partition, outcome.undecodable);
        }
        let results = 0;
        const publishes: Array<Promise<PubAck>> = [];
        for (const out of outcome.messages) {
          results += out.results;
          publishes.push(observed(this.js.publish(out.subject, out.payload, { msgID: out.msgId, timeout: PUBLISH_TIMEOUT_MS })));
        }
        inFlight.push(...publishes);
        // Observed when the broker acknowledges, not when the in-flight window is next drained
        // (that happens only every maxPublishesInFlight publishes or at a checkpoint).
        if (results > 0) {
          void Promise.all(publishes).then(
            () => this.observer.emitted?.(this.partition, results, Date.now() - logTimeMs),
            () => undefined, // drain() rethrows the failure
          );
        }
        this.observer.processed?.(this.partition, outcome, processor);
        if (inFlight.length >= this.settings.maxPublishesInFlight) await drain();
        if (!background.busy && performance.now() - lastCheckpointAt >= this.settings.checkpointIntervalMs) void checkpoint();
        if (this.stopping) break;
      }
    } finally {
      await background.settled();
    }
    if (background.failed) throw background.failed;
    if (this.stopping && this.checkpointOnStop) {
      if (uncheckpointed) {
        await checkpoint();
        if (background.failed) throw background.failed;
      } else {
        await drain();
      }
    }
  }

  /**
   * Time passing is a record too: an idle partition gets an empty TransactionBatch appended, whose
   * broker timestamp lets the watermark advance (idle timeout) deterministically, also on replay.
   * The id is per interval, so instances that briefly both own the partition append it once.
   */
  private async heartbeatIfIdle(): Promise<void> {
    if (this.stopping || Date.now() - this.lastMessageAt < this.settings.heartbeatIntervalMs) return;
    const slot = Math.floor(Date.now() / this.settings.heartbeatIntervalMs);
    const batchId = `heartbeat-${this.partition}-${slot}`;
    try {
      await this.js.publish(Subjects.transactionPartition(this.partition), TransactionBatch.encode({ batchId, transactions: [] }).finish(), {
        msgID: batchId,
        timeout: PUBLISH_TIMEOUT_MS,
      });
      this.observer.heartbeat?.(this.partition);
    } catch (error) {
      this.observer.failed?.(this.partition, error);
    }
  }
}
