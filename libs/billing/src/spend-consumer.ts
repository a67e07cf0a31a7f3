import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { CustomerSpendBatch, Streams, Subjects, TransactionBatch } from '@tollstream/contracts';
import type { DeadLetterPublisher } from '@tollstream/messaging';
import type { SpendApplier } from './spend-applier';
import { entriesOfLateBatch, entriesOfSpendBatch, type ParsedSpend, type SpendEntry } from './spend-entries';

export interface SpendConsumerOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  applier: SpendApplier;
  deadLetters: DeadLetterPublisher;
  /** Durable consumer names; instances sharing them share the work. */
  spendDurable: string;
  lateDurable: string;
  ackWaitMs: number;
  /** Stream messages taken per round (their results are grouped per account). */
  maxMessagesPerRound: number;
  /** Unacknowledged messages the broker lets one consumer have. */
  maxAckPending: number;
  /**
   * Rounds applied at the same time (default 1): the next round starts while earlier ones wait for
   * their slowest account updates and publications. Each round is still acknowledged only after all
   * of its accounts are applied; an account is never updated by two rounds at once (SpendApplier).
   */
  maxRoundsInFlight?: number;
  /** Messages the client fetches ahead of the rounds, per consumer (default 2 × maxMessagesPerRound, at least 64). */
  fetchAhead?: number;
  observer?: {
    round?(messages: number, entries: number, durationMs: number): void;
    deadLettered?(reasonCode: string): void;
    failed?(error: unknown): void;
  };
}

interface Pulled {
  msg: JsMsg;
  kind: 'spend' | 'late';
}

/**
 * Reads window results (tolls.agg.spend.>) and late transactions (tolls.agg.late.spend.>) with two
 * durable pull consumers, and applies them in rounds: whatever has arrived (up to a maximum) is
 * decoded, grouped per account, applied and published, and only then acknowledged. A failed round
 * is not acknowledged (nak): redelivery re-applies idempotently and publishes any leftover outbox.
 */
export class SpendConsumer {
  private readonly queue: Pulled[] = [];
  private wake: (() => void) | undefined;
  /** Pumps waiting for room in the queue (it holds at most the fetch-ahead of both consumers). */
  private readonly roomWaiters: Array<() => void> = [];
  private queueLimit = 0;
  private stopping = false;
  private streams: ConsumerMessages[] = [];
  private pumps: Array<Promise<void>> = [];
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private lastRoundAt = Date.now();

  constructor(private readonly options: SpendConsumerOptions) {}

  async start(): Promise<void> {
    const spend = await this.ensureConsumer(this.options.spendDurable, Subjects.customerSpendAll);
    const late = await this.ensureConsumer(this.options.lateDurable, 'tolls.agg.late.spend.>');
    const fetchAhead = this.options.fetchAhead ?? Math.max(64, this.options.maxMessagesPerRound * 2);
    // Messages are taken from the client's buffers only while the queue has room: unbounded, the
    // pumps would empty them as fast as they fill and the process would hold every unacknowledged
    // message the broker allows (max_ack_pending), decoded work included.
    this.queueLimit = Math.max(fetchAhead, this.options.maxMessagesPerRound * Math.max(1, this.options.maxRoundsInFlight ?? 1));
    for (const [consumer, kind] of [[spend, 'spend'], [late, 'late']] as const) {
      const messages = await consumer.consume({ max_messages: fetchAhead });
      this.streams.push(messages);
      this.pumps.push(this.pump(messages, kind));
    }
    this.loop = this.run();
  }

  /** Stops pulling; the rounds in hand finish and are acknowledged. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.streams.map((messages) => messages.close().catch(() => undefined)));
    this.wake?.();
    this.releaseRoom();
    await this.loop;
    await Promise.all(this.pumps);
    // Unacknowledged messages left in the queue are redelivered to another instance after ack_wait.
  }

  /** Time since the last round finished (liveness). */
  get idleMs(): number {
    return Date.now() - this.lastRoundAt;
  }

  private async ensureConsumer(durable: string, filterSubject: string) {
    const ackWait = this.options.ackWaitMs * 1_000_000;
    try {
      const info = await this.options.jsm.consumers.info(Streams.aggregates, durable);
      if (info.config.ack_wait !== ackWait || info.config.max_ack_pending !== this.options.maxAckPending) {
        await this.options.jsm.consumers.update(Streams.aggregates, durable, { ack_wait: ackWait, max_ack_pending: this.options.maxAckPending });
      }
    } catch (error) {
      if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.ConsumerNotFound) throw error;
      try {
        await this.options.jsm.consumers.add(Streams.aggregates, {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subject: filterSubject,
          ack_wait: ackWait,
          max_ack_pending: this.options.maxAckPending,
          max_deliver: -1,
        });
      } catch (addError) {
        // Another instance created it concurrently.
        await this.options.jsm.consumers.info(Streams.aggregates, durable).catch(() => {
          throw addError;
        });
      }
    }
    return this.options.js.consumers.get(Streams.aggregates, durable);
  }

  private async pump(messages: ConsumerMessages, kind: Pulled['kind']): Promise<void> {
    for await (const msg of messages) {
      this.queue.push({ msg, kind });
      this.wake?.();
      while (this.queue.length >= this.queueLimit && !this.stopping) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  private releaseRoom(): void {
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }

  private async run(): Promise<void> {
    const maxInFlight = Math.max(1, this.options.maxRoundsInFlight ?? 1);
    while (!this.stopping || this.queue.length > 0) {
      if (this.inFlight.size >= maxInFlight) {
        await Promise.race(this.inFlight);
        continue;
      }
      if (this.queue.length === 0) {
        if (this.stopping) break;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          // Re-check now and then: a wake between the length check and here is not lost for long.
          setTimeout(resolve, 200);
        });
        this.wake = undefined;
        continue;
      }
      const round = this.queue.splice(0, this.options.maxMessagesPerRound);
      this.releaseRoom();
      const running = this.applyRound(round).finally(() => this.inFlight.delete(running));
      this.inFlight.add(running);
    }
    await Promise.all(this.inFlight);
  }

  /** Decodes, applies and publishes one round, then acknowledges it (or, when that failed, naks it). Never rejects. */
  private async applyRound(round: Pulled[]): Promise<void> {
    const started = Date.now();
    try {
      const entries = await this.decode(round);
      const applied = await this.options.applier.applyEntries(entries);
      for (const rejection of applied.rejected) {
        await this.deadLetter(
          rejection.reason === 'currency-mismatch' ? 'CURRENCY_MISMATCH' : 'MONTH_CLOSED',
          rejection.reason === 'currency-mismatch'
            ? `${rejection.entry.sourceId}: spend in ${rejection.entry.currency}, not in the account's currency`
            : `${rejection.entry.sourceId}: the month's ledger was sealed (result arrived after the ledger retention)`,
          rejection.entry.original?.() ?? new Uint8Array(0),
          undefined,
        );
      }
      for (const pulled of round) pulled.msg.ack();
      this.lastRoundAt = Date.now();
      this.options.observer?.round?.(round.length, entries.length, Date.now() - started);
    } catch (error) {
      this.options.observer?.failed?.(error);
      for (const pulled of round) pulled.msg.nak(1_000);
    }
  }

  private async decode(round: Pulled[]): Promise<SpendEntry[]> {
    const entries: SpendEntry[] = [];
    for (const { msg, kind } of round) {
      let parsed: ParsedSpend;
      try {
        parsed = kind === 'spend' ? entriesOfSpendBatch(CustomerSpendBatch.decode(msg.data)) : entriesOfLateBatch(TransactionBatch.decode(msg.data));
      } catch (error) {
        await this.deadLetter('UNDECODABLE', `cannot decode ${kind === 'spend' ? 'CustomerSpendBatch' : 'TransactionBatch'}: ${(error as Error).message}`, msg.data, msg.subject);
        continue;
      }
      for (const invalid of parsed.invalid) {
        await this.deadLetter('INVALID_SPEND', `${invalid.sourceId}: ${invalid.reason}`, invalid.original, msg.subject);
      }
      entries.push(...parsed.entries);
    }
    return entries;
  }

  private async deadLetter(reasonCode: string, reason: string, original: Uint8Array, originalSubject: string | undefined): Promise<void> {
    await this.options.deadLetters.publish({ reasonCode, reason, original, originalSubject });
    this.options.observer?.deadLettered?.(reasonCode);
  }
}
