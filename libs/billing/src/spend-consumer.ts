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
import { originalMsgIdOf, type DeadLetterPublisher } from '@tollstream/messaging';
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
    /** A round started at once because its spend may raise an alert. */
    urgentRound?(messages: number): void;
    deadLettered?(reasonCode: string): void;
    failed?(error: unknown): void;
  };
}

interface Pulled {
  msg: JsMsg;
  kind: 'spend' | 'late';
  /** Decoded on arrival (to see at once whether it may raise an alert); undefined when it could not be. */
  parsed?: ParsedSpend;
  decodeError?: string;
}

/**
 * Reads window results (tolls.agg.spend.>) and late transactions (tolls.agg.late.spend.>) with two
 * durable pull consumers, and applies them in rounds: whatever has arrived (up to a maximum) is
 * decoded, grouped per account, applied and published, and only then acknowledged. A failed round
 * is not acknowledged (nak): redelivery re-applies idempotently and publishes any leftover outbox.
 *
 * Alerts first: a message whose spend may raise an alert (SpendApplier.arrived) does not wait in
 * the queue; it is applied at once in its own round, together with the queued messages that hold
 * spend of the same accounts (so an account's spend is still applied in arrival order), and its
 * updates take the next free update slots.
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
    await Promise.all(this.inFlight); // urgent rounds the pumps started last
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
      const pulled = decodeOnArrival(msg, kind);
      const mayAlert = pulled.parsed ? this.options.applier.arrived(pulled.parsed.entries) : undefined;
      if (mayAlert && mayAlert.size > 0) {
        this.startUrgentRound(pulled, mayAlert);
      } else {
        this.queue.push(pulled);
        this.wake?.();
      }
      while (this.queue.length >= this.queueLimit && !this.stopping) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
  }

  /** Applies `pulled` now, with the queued messages holding spend of the same accounts (in queue order). */
  private startUrgentRound(pulled: Pulled, accounts: ReadonlySet<string>): void {
    const round: Pulled[] = [];
    const rest: Pulled[] = [];
    for (const queued of this.queue) {
      (queued.parsed?.entries.some((entry) => accounts.has(entry.accountId)) ? round : rest).push(queued);
    }
    if (round.length > 0) {
      this.queue.splice(0, this.queue.length, ...rest);
      this.releaseRoom();
    }
    round.push(pulled);
    this.options.observer?.urgentRound?.(round.length);
    this.startRound(round, true);
  }

  private startRound(round: Pulled[], urgent: boolean): void {
    const running = this.applyRound(round, urgent).finally(() => this.inFlight.delete(running));
    this.inFlight.add(running);
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
      this.startRound(round, false);
    }
    await Promise.all(this.inFlight);
  }

  /** Decodes, applies and publishes one round, then acknowledges it (or, when that failed, naks it). Never rejects. */
  private async applyRound(round: Pulled[], urgent: boolean): Promise<void> {
    const started = Date.now();
    try {
      const entries = await this.entriesOf(round);
      const applied = await this.options.applier.applyEntries(entries, { urgent });
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

  /** The round's entries; what cannot be decoded or is invalid goes to the dead letters. */
  private async entriesOf(round: Pulled[]): Promise<SpendEntry[]> {
    const entries: SpendEntry[] = [];
    for (const { msg, kind, parsed, decodeError } of round) {
      if (!parsed) {
        await this.deadLetter('UNDECODABLE', `cannot decode ${kind === 'spend' ? 'CustomerSpendBatch' : 'TransactionBatch'}: ${decodeError ?? 'unknown error'}`, msg.data, msg.subject, originalMsgIdOf(msg));
        continue;
      }
      for (const invalid of parsed.invalid) {
        await this.deadLetter('INVALID_SPEND', `${invalid.sourceId}: ${invalid.reason}`, invalid.original, msg.subject);
      }
      entries.push(...parsed.entries);
    }
    return entries;
  }

  private async deadLetter(reasonCode: string, reason: string, original: Uint8Array, originalSubject: string | undefined, originalMsgId?: string): Promise<void> {
    await this.options.deadLetters.publish({ reasonCode, reason, original, originalSubject, originalMsgId });
    this.options.observer?.deadLettered?.(reasonCode);
  }
}

function decodeOnArrival(msg: JsMsg, kind: Pulled['kind']): Pulled {
  try {
    return { msg, kind, parsed: kind === 'spend' ? entriesOfSpendBatch(CustomerSpendBatch.decode(msg.data)) : entriesOfLateBatch(TransactionBatch.decode(msg.data)) };
  } catch (error) {
    return { msg, kind, decodeError: (error as Error).message };
  }
}
