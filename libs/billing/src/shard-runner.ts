import { DeliverPolicy, type ConsumerMessages, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  RECORD_KIND_HEADER,
  SpendingThresholdCommand,
  SpendingThresholdCommandOutcome,
  SpendShardRecordKinds,
  Streams,
  Subjects,
} from '@tollstream/contracts';
import { BackgroundSnapshots, observed, type DeadLetterPublisher } from '@tollstream/messaging';
import type { AccountStateChanges, AccountStateSource, AccountStateStore } from '@tollstream/stores';
import { BillingShard, type AccountState, type BillingShardOptions, type ShardOutcome, type ShardOutput, type ThresholdCommandOutcome } from './billing-shard';
import { thresholdMessage } from './account-views';
import { outboxMessage } from './spend-applier';
import { readSpendBatch, type SpendBatchInput } from './spend-batch-reader';

/** Where a shard's snapshots are kept: chunked frames replaced atomically (the shared snapshot store). */
export interface ShardSnapshots {
  save(name: string, frames: Iterable<{ kind: string; data: Uint8Array }> | AsyncIterable<{ kind: string; data: Uint8Array }>): Promise<number>;
  load(name: string): Promise<Array<{ kind: string; data: Uint8Array }> | undefined>;
}

export interface ShardRunnerSettings {
  /** How often the shard's state is snapshotted (after every output up to then is acknowledged). */
  snapshotIntervalMs: number;
  /** How often the accounts changed since the last flush are written to the store (one bulk write). */
  flushIntervalMs: number;
  /** Output publishes awaiting their broker acknowledgement before the runner waits (backpressure). */
  maxPublishesInFlight: number;
  /** Messages the consumer fetches ahead. */
  fetchAhead: number;
  /**
   * Accounts changed and not yet written to the store at most, while a flush is under way: then the
   * runner waits for it instead of holding ever more changed records (the store's pace bounds the
   * memory of a flush; without it, a shard catching up on a backlog over a million accounts held
   * records of all of them at once). Asked at every record: the shard's share of its instance's
   * budget, which changes with the shards the instance owns. Default 20,000.
   */
  maxUnflushedAccounts?: () => number;
}

/** What the service counts and logs; every method optional. */
export interface BillingShardObserver {
  outcomes?(shard: number, outcomes: Partial<Record<ShardOutcome, number>>): void;
  alertPublished?(alertId: string, breachToAlertMs: number | undefined): void;
  thresholdEventPublished?(eventId: string): void;
  deadLettered?(reasonCode: string): void;
  flushed?(shard: number, accounts: number, months: number, durationMs: number): void;
  snapshotted?(shard: number, bytes: number, durationMs: number): void;
  restored?(shard: number, fromSequence: number, accounts: number, durationMs: number): void;
  failed?(shard: number, error: unknown): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const PUBLISH_TIMEOUT_MS = 10_000;
const YIELD_EVERY_MS = 20;

export const snapshotNameOfShard = (shard: number): string => `billing-shard-${shard}`;

/** Questions the AccountService asks the owner of a shard (core NATS request, JSON). */
export interface ShardQuery {
  accountId: string;
}

/** The owner's answer: the account as the state machine holds it, or nothing (never seen). */
export interface ShardQueryAnswer {
  shard: number;
  /** Stream sequence of the last record applied. */
  position: number;
  account?: AccountState;
}

/**
 * Runs billing for one owned spend shard: restores its last snapshot, reads the shard's subject
 * from the next sequence with an ordered consumer (spend batches and threshold commands in one
 * order), applies each record to the state machine, publishes its outputs (alerts and threshold
 * events with their deterministic ids, dead letters), answers the threshold command's caller once
 * the outputs are stored, writes the changed accounts to the store in bulk every flush interval,
 * and snapshots once every output up to that record is acknowledged. Any failure restarts it from
 * the last snapshot: repeated outputs carry the same ids and are absorbed (ADR 0013).
 */
export class ShardRunner {
  private stopping = false;
  private snapshotOnStop = true;
  private messages?: ConsumerMessages;
  private queries?: Subscription;
  private running?: Promise<void>;
  private state?: BillingShard;
  /** Records on the shard's subject after the last one applied (the broker's count at its delivery); undefined before the first. */
  pendingRecords: number | undefined;

  constructor(
    readonly shard: number,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly snapshots: ShardSnapshots,
    private readonly store: AccountStateStore,
    private readonly deadLetters: DeadLetterPublisher,
    private readonly shardOptions: BillingShardOptions,
    private readonly settings: ShardRunnerSettings,
    private readonly observer: BillingShardObserver,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  /** Stops; with `snapshot`, after a final flush and snapshot (a graceful hand-over), else at once (lease lost). */
  async stop(snapshot: boolean): Promise<void> {
    this.stopping = true;
    this.snapshotOnStop = snapshot;
    await this.messages?.close();
    await this.running;
  }

  /** The state machine while running (for the owner's answers); undefined while restoring. */
  get current(): BillingShard | undefined {
    return this.state;
  }

  private async loop(): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        await this.runFromSnapshot();
      } catch (error) {
        if (this.stopping) return;
        this.observer.failed?.(this.shard, error);
        await sleep(Math.min(5_000, 200 * 2 ** Math.min(attempt, 5)));
      } finally {
        this.state = undefined;
        this.queries?.unsubscribe();
        this.queries = undefined;
      }
    }
  }

  private async runFromSnapshot(): Promise<void> {
    const started = performance.now();
    const name = snapshotNameOfShard(this.shard);
    const frames = await this.snapshots.load(name);
    const state = frames ? BillingShard.restore(this.shardOptions, frames) : new BillingShard(this.shardOptions);
    // The read model may lack what the snapshot holds beyond the last flush: write it again.
    const flushedAtStart = await this.store.flushedPosition(this.shard);
    state.markChangedAfter(flushedAtStart);
    this.observer.restored?.(this.shard, state.lastSequence, state.accountCount, performance.now() - started);
    if (this.stopping) return;
    this.state = state;
    this.queries = this.nc.subscribe(Subjects.billingShardQueries(this.shard), {
      callback: (error, msg) => {
        if (error || !msg.reply) return;
        try {
          const query = JSON.parse(msg.string()) as ShardQuery;
          const answer: ShardQueryAnswer = { shard: this.shard, position: state.lastSequence, account: state.account(String(query.accountId)) };
          msg.respond(JSON.stringify(answer));
        } catch {
          msg.respond(JSON.stringify({ shard: this.shard, position: state.lastSequence }));
        }
      },
    });

    const consumer = await this.js.consumers.get(Streams.aggregates, {
      filter_subjects: Subjects.customerSpendShard(this.shard),
      ...(state.lastSequence > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: state.lastSequence + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume({ max_messages: this.settings.fetchAhead });
    this.messages = messages;
    if (this.stopping) await messages.close();

    let inFlight: Array<Promise<unknown>> = [];
    let lastSnapshotAt = performance.now();
    let lastFlushAt = performance.now();
    let flushedPosition = flushedAtStart;
    let flushing: Promise<void> | undefined;
    let unsnapshotted = false;
    const drain = async () => {
      const waiting = inFlight;
      inFlight = [];
      await Promise.all(waiting);
    };
    const flush = (): Promise<void> | undefined => {
      // While replaying what the store already has, writing would move it back: wait until past it.
      if (flushing || state.lastSequence <= flushedPosition) return flushing;
      const position = state.lastSequence;
      const changes: AccountStateChanges = { ...state.takeChangedRecords(flushedPosition), source: recordsOf(state) };
      const begun = performance.now();
      flushing = this.store
        .write(this.shard, position, changes)
        .then(() => {
          flushedPosition = position;
          this.observer.flushed?.(this.shard, changes.accounts.length, changes.months.length, performance.now() - begun);
        })
        .finally(() => (flushing = undefined));
      return flushing;
    };
    // A snapshot copies the state and is saved in the background once the outputs up to it are
    // acknowledged (the shard goes on applying meanwhile); a failed save fails the runner.
    const background = new BackgroundSnapshots({
      save: (frames) => this.snapshots.save(name, frames),
      saved: (bytes, durationMs) => this.observer.snapshotted?.(this.shard, bytes, durationMs),
      failed: () => void messages.close(),
    });
    // Encoded in slices while the shard goes on (copy on write): encoded at once, 100,000 accounts
    // stalled the shard for about 250 ms, and every alert behind them.
    const snapshot = (): Promise<void> => {
      if (background.busy) return background.settled().then(snapshot);
      lastSnapshotAt = performance.now();
      unsnapshotted = false;
      return background.takeLive(state.liveSnapshotFrames(), inFlight);
    };

    // Also flushed while no input arrives, so that the store is at most one flush interval behind.
    let flushFailure: unknown;
    const failFlush = (error: unknown) => {
      flushFailure ??= error;
      void messages.close();
    };
    const idleFlush = setInterval(() => {
      if (performance.now() - lastFlushAt < this.settings.flushIntervalMs) return;
      lastFlushAt = performance.now();
      flush()?.catch(failFlush);
    }, this.settings.flushIntervalMs);
    idleFlush.unref();

    // Buffered messages are handed over in microtasks: yield now and then so that lease renewals,
    // the AccountService and /metrics are served while a backlog is applied.
    let lastYieldAt = performance.now();
    const maxUnflushed = this.settings.maxUnflushedAccounts ?? (() => 20_000);
    try {
      for await (const message of messages) {
        if (performance.now() - lastYieldAt > YIELD_EVERY_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          lastYieldAt = performance.now();
        }
        this.pendingRecords = message.info.pending;
        const logTimeMs = Number(message.timestampNanos / 1_000_000n);
        const kind = message.headers?.get(RECORD_KIND_HEADER) ?? '';
        let output: ShardOutput;
        if (kind === '') {
          let batch: SpendBatchInput | undefined;
          try {
            batch = readSpendBatch(message.data);
          } catch (error) {
            output = state.rejectRecord(message.seq, logTimeMs, 'UNDECODABLE', `not a CustomerSpendBatch: ${error instanceof Error ? error.message : String(error)}`, message.data);
          }
          output ??= state.applySpendBatch(message.seq, logTimeMs, batch as SpendBatchInput);
        } else if (kind === SpendShardRecordKinds.thresholdCommand) {
          let command: SpendingThresholdCommand | undefined;
          try {
            command = SpendingThresholdCommand.decode(message.data);
          } catch (error) {
            output = state.rejectRecord(message.seq, logTimeMs, 'UNDECODABLE', `not a SpendingThresholdCommand: ${error instanceof Error ? error.message : String(error)}`, message.data);
          }
          output ??= state.applyThresholdCommand(message.seq, logTimeMs, command as SpendingThresholdCommand, message.data);
        } else {
          output = state.rejectRecord(message.seq, logTimeMs, 'UNKNOWN_RECORD', `billing does not know records of kind ${JSON.stringify(kind.slice(0, 40))} on ${message.subject}`, message.data);
        }
        unsnapshotted = true;
        this.observer.outcomes?.(this.shard, output.outcomes);
        inFlight.push(...this.publishOutputs(output, message.subject).map(observed));
        if (inFlight.length >= this.settings.maxPublishesInFlight) await drain();
        const unflushed = state.changedAccounts >= maxUnflushed();
        if (unflushed && flushing) await flushing.catch(() => undefined); // its failure is failFlush's
        if (unflushed || performance.now() - lastFlushAt >= this.settings.flushIntervalMs) {
          lastFlushAt = performance.now();
          // Not among the outputs a snapshot waits for: the read model is written again after a
          // restore (from its flushed position), so a slow flush makes the store staler, never the
          // alerts later. A failed flush fails the runner (restart from the snapshot).
          flush()?.catch(failFlush);
        }
        if (!background.busy && performance.now() - lastSnapshotAt >= this.settings.snapshotIntervalMs) void snapshot();
        if (this.stopping) break;
      }
    } finally {
      clearInterval(idleFlush);
      await background.settled();
    }
    if (flushFailure) throw flushFailure;
    if (background.failed) throw background.failed;
    if (this.stopping && this.snapshotOnStop) {
      await drain();
      await flushing;
      await flush();
      if (unsnapshotted) {
        await snapshot();
        if (background.failed) throw background.failed;
      }
    }
  }

  private publishOutputs(output: ShardOutput, subject: string): Array<Promise<unknown>> {
    const publishes: Array<Promise<unknown>> = [];
    for (const entry of [...output.thresholdEvents, ...output.alerts]) {
      const message = outboxMessage(entry);
      const published: Promise<PubAck> = this.js.publish(message.subject, message.data, { msgID: message.msgID, timeout: PUBLISH_TIMEOUT_MS });
      publishes.push(
        published.then(() => {
          if (entry.kind === 'spending-alert') {
            // Latency only for fresh breaches (not a replay after a restart).
            const sinceRaised = Date.now() - entry.raisedAtMs;
            this.observer.alertPublished?.(entry.id, sinceRaised < 60_000 ? Date.now() - entry.breachedAtMs : undefined);
          } else {
            this.observer.thresholdEventPublished?.(entry.id);
          }
        }),
      );
    }
    for (const letter of output.deadLetters) {
      publishes.push(
        this.deadLetters.publish({ reasonCode: letter.reasonCode, reason: letter.reason, original: letter.original, originalSubject: subject }).then(() => this.observer.deadLettered?.(letter.reasonCode)),
      );
    }
    const outcome = output.commandOutcome;
    if (outcome?.replySubject) {
      // Answered once what the command raised is stored; on a replay the caller is gone and nobody listens.
      const answered = Promise.all(publishes).then(() => this.nc.publish(outcome.replySubject, SpendingThresholdCommandOutcome.encode(outcomeMessage(outcome)).finish()));
      return [answered];
    }
    return publishes;
  }
}

function outcomeMessage(outcome: ThresholdCommandOutcome): SpendingThresholdCommandOutcome {
  return {
    commandId: outcome.commandId,
    accountId: outcome.accountId,
    accepted: outcome.accepted,
    rejectionField: outcome.rejectionField,
    rejectionReason: outcome.rejectionReason,
    threshold: outcome.threshold ? thresholdMessage(outcome.accountId, outcome.threshold) : undefined,
    changed: outcome.changed,
    breachedNow: outcome.breachedNow,
  };
}

/** The state machine's records as they are when asked (a store that rewrites whole pages reads them instead of its own). */
function recordsOf(state: BillingShard): AccountStateSource {
  return {
    account: (accountId) => state.accountRecord(accountId),
    month: (accountId, month) => state.monthRecord(accountId, month),
  };
}
