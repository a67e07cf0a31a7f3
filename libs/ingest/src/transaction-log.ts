import { randomUUID } from 'node:crypto';
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
import {
  IngestedTransaction,
  partitionOfSubject,
  Streams,
  Subjects,
  TransactionBatch,
} from '@tollstream/contracts';
import { DuplicateIndex, fingerprintOf, type Fingerprint } from './duplicate-index';

export type AppendOutcome = 'accepted' | 'duplicate' | 'unavailable';

export interface TransactionLogOptions {
  partitions: number;
  /** Records older than this (event time) are rejected upstream, so the index need not remember them. */
  acceptanceHorizonMs: number;
  maxClockSkewMs: number;
  /** Upper bounds of one stream message (one append). */
  maxRecordsPerAppend: number;
  maxBytesPerAppend: number;
  /** How long one append keeps retrying a broker that does not answer before reporting unavailable. */
  appendDeadlineMs: number;
  /** Fingerprint of the duplicate index; tests replace it to force collisions. */
  fingerprint?: Fingerprint;
}

export interface TransactionLogObserver {
  appended?(partition: number, records: number, latencyMs: number): void;
  conflict?(partition: number): void;
  retried?(partition: number, error: unknown): void;
}

/** One caller's records for a partition; its promise resolves when every record has an outcome. */
interface AppendRequest {
  outcomes: AppendOutcome[];
  remaining: number;
  resolve(outcomes: AppendOutcome[]): void;
}

interface PendingAppend {
  record: IngestedTransaction;
  stationId: string;
  transactionId: string;
  occurredAtMs: number;
  request: AppendRequest;
  /** Position of the record in its request. */
  position: number;
  settled: boolean;
}

/** One promise per call, not per record: at 100k records/s the allocations matter. */
function settle(item: PendingAppend, outcome: AppendOutcome): void {
  if (item.settled) return; // e.g. found duplicate before a later step gave up on the rest
  item.settled = true;
  const request = item.request;
  request.outcomes[item.position] = outcome;
  if (--request.remaining === 0) request.resolve(request.outcomes);
}

const isWrongLastSequence = (error: unknown): boolean =>
  error instanceof JetStreamApiError &&
  (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
    error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

/**
 * Upper bound of a record's encoded size without encoding it twice: validated strings are ASCII
 * (one byte per character), each field costs at most 2 bytes of tag and 2 of length, numbers and
 * timestamps at most 40 bytes together.
 */
function encodedSizeBound(record: IngestedTransaction): number {
  const t = record.transaction;
  if (!t) return 64;
  const text = t.transactionId.length + t.stationId.length + t.laneId.length + t.tagId.length + t.plate.length + t.accountId.length + t.currency.length;
  return text + 7 * 4 + 40 + 40;
}

/** Exponential backoff with jitter for a broker that does not answer (attempt 1, 2, ...). */
const retryDelayMs = (attempt: number): number => Math.min(2_000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The transaction stream as seen by ingestors: appends accepted records to tolls.tx.<partition>
 * exactly once per (station, transaction id), however many ingestor replicas run and however
 * often stations retry. See docs/adr/0003-exactly-once-ingest.md.
 *
 * - Group commit: records from all concurrent requests for a partition go out together in one
 *   TransactionBatch message while the previous append of that partition is in flight.
 * - Single logical writer per partition through optimistic concurrency: every append states the
 *   partition's last sequence it knows (Nats-Expected-Last-Subject-Sequence). If another replica
 *   appended first, the broker refuses; we catch up from the stream and re-check for duplicates.
 * - A tail of the stream (from now minus the horizon) keeps the duplicate index and the
 *   partitions' last sequences current, including what other replicas wrote.
 */
export class TransactionLog {
  private readonly index: DuplicateIndex;
  private readonly lastSequence: number[];
  private readonly queues: PendingAppend[][];
  private readonly flushing: boolean[];
  private readonly idle: Array<Array<() => void>>;
  /** Batches this process published, and the stream sequence where the tail saw them land. */
  private readonly ownBatches = new Map<string, number | undefined>();
  private tailedSequence = 0;
  private readonly tailWaiters: Array<{ sequence: number; resolve: () => void }> = [];
  private tail?: ConsumerMessages;
  private tailDone?: Promise<void>;
  private pruneTimer?: NodeJS.Timeout;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly options: TransactionLogOptions,
    private readonly observer: TransactionLogObserver = {},
  ) {
    this.index = new DuplicateIndex(options.fingerprint ?? fingerprintOf);
    this.lastSequence = new Array<number>(options.partitions).fill(0);
    this.queues = Array.from({ length: options.partitions }, () => []);
    this.flushing = new Array<boolean>(options.partitions).fill(false);
    this.idle = Array.from({ length: options.partitions }, () => []);
  }

  get duplicateIndexSize(): number {
    return this.index.size;
  }

  /** Loads what is already in the stream within the horizon; resolves when caught up. */
  async start(): Promise<void> {
    const startTime = new Date(Date.now() - this.options.acceptanceHorizonMs - this.options.maxClockSkewMs);
    let catchUpTo = 0;
    for (let partition = 0; partition < this.options.partitions; partition++) {
      const last = await this.lastStoredInPartition(partition);
      if (!last) continue;
      this.lastSequence[partition] = last.sequence;
      if (last.time >= startTime) catchUpTo = Math.max(catchUpTo, last.sequence);
    }
    const consumer = await this.js.consumers.get(Streams.transactions, {
      name_prefix: `ingestor-duplicate-index-${randomUUID().slice(0, 8)}`,
      filter_subjects: Subjects.transactionsAll,
      // By sequence, not DeliverPolicy.StartTime: @nats-io/jetstream 3.4 keeps opt_start_time when it
      // recreates an ordered consumer (e.g. after a broker restart) with a start sequence, which the
      // server refuses; the tail, and with it every append, then stopped for good.
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: await this.firstSequenceSince(startTime),
    });
    this.tail = await consumer.consume({ max_messages: 512 });
    const tail = this.tail;
    this.tailDone = (async () => {
      for await (const message of tail) this.onTailed(message);
    })();
    await this.waitForTail(catchUpTo);
    // Forget what has aged out of the horizon, once a minute.
    this.pruneTimer = setInterval(() => {
      this.index.forgetBefore(Date.now() - this.options.acceptanceHorizonMs - this.options.maxClockSkewMs);
    }, 60_000);
    this.pruneTimer.unref();
  }

  /** Appends records of one partition. Outcomes are in input order. */
  append(partition: number, records: ReadonlyArray<IngestedTransaction>): Promise<AppendOutcome[]> {
    if (records.length === 0) return Promise.resolve([]);
    return new Promise<AppendOutcome[]>((resolve) => {
      const request: AppendRequest = { outcomes: new Array<AppendOutcome>(records.length), remaining: records.length, resolve };
      const queue = this.queues[partition];
      records.forEach((record, position) => {
        const transaction = record.transaction;
        if (!transaction?.occurredAt) throw new Error('append needs validated records');
        queue.push({
          record,
          stationId: transaction.stationId,
          transactionId: transaction.transactionId,
          occurredAtMs: transaction.occurredAt.getTime(),
          request,
          position,
          settled: false,
        });
      });
      this.schedule(partition);
    });
  }

  /** Waits for every queued append to finish, then stops tailing. */
  async stop(): Promise<void> {
    await Promise.all(
      this.queues.map(
        (_, partition) =>
          new Promise<void>((resolve) => {
            if (!this.flushing[partition] && this.queues[partition].length === 0) resolve();
            else this.idle[partition].push(resolve);
          }),
      ),
    );
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.tail?.close();
    await this.tailDone;
  }

  private schedule(partition: number): void {
    if (this.flushing[partition]) return;
    if (this.queues[partition].length === 0) {
      for (const resolve of this.idle[partition].splice(0)) resolve();
      return;
    }
    this.flushing[partition] = true;
    this.flush(partition)
      .catch((error: unknown) => this.observer.retried?.(partition, error))
      .finally(() => {
        this.flushing[partition] = false;
        this.schedule(partition);
      });
  }

  private takeAppendable(partition: number): PendingAppend[] {
    const queue = this.queues[partition];
    const taken: PendingAppend[] = [];
    // Repeats within one append (the same transaction sent twice at once); small, so a plain set.
    const inThisAppend = new Set<string>();
    let bytes = 0;
    let next = 0;
    for (; next < queue.length && taken.length < this.options.maxRecordsPerAppend; next++) {
      const item = queue[next];
      const key = `${item.stationId}\u0000${item.transactionId}`;
      if (inThisAppend.has(key)) {
        settle(item, 'duplicate');
        continue;
      }
      const size = encodedSizeBound(item.record);
      if (taken.length > 0 && bytes + size > this.options.maxBytesPerAppend) break;
      bytes += size;
      inThisAppend.add(key);
      taken.push(item);
    }
    queue.splice(0, next);
    return taken;
  }

  /**
   * Settles as duplicates the items already in the stream and returns the others. The index gives
   * candidates; each is verified against the batch it points to, so a fingerprint collision never
   * turns a new transaction into a "duplicate".
   */
  private async dropStored(items: PendingAppend[]): Promise<PendingAppend[]> {
    const kept: PendingAppend[] = [];
    let batches: Map<number, Set<string> | undefined> | undefined;
    for (const item of items) {
      const sequence = this.index.candidate(item.stationId, item.transactionId);
      if (sequence === undefined) {
        kept.push(item);
        continue;
      }
      batches ??= new Map();
      if (!batches.has(sequence)) batches.set(sequence, await this.transactionsOfBatch(sequence));
      const stored = batches.get(sequence);
      const key = `${item.stationId}\u0000${item.transactionId}`;
      // A batch gone from the stream (retention shorter than the horizon) cannot be checked: never bill twice.
      if (!stored || stored.has(key) || this.index.knownExactly(item.stationId, item.transactionId)) {
        settle(item, 'duplicate');
      } else {
        kept.push(item);
      }
    }
    return kept;
  }

  /**
   * dropStored, retried while the broker does not answer (a reconnect, a restart) until `deadline`;
   * then every item not yet answered is "unavailable" (the station retries).
   */
  private async withoutStored(partition: number, items: PendingAppend[], deadline: number): Promise<PendingAppend[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dropStored(items.filter((item) => !item.settled));
      } catch (error) {
        this.observer.retried?.(partition, error);
        if (Date.now() >= deadline) {
          for (const item of items) settle(item, 'unavailable');
          return [];
        }
        await sleep(retryDelayMs(attempt));
      }
    }
  }

  private async transactionsOfBatch(sequence: number): Promise<Set<string> | undefined> {
    try {
      const message = await this.jsm.streams.getMessage(Streams.transactions, { seq: sequence });
      if (!message) return undefined;
      const keys = new Set<string>();
      for (const stored of TransactionBatch.decode(message.data).transactions) {
        if (stored.transaction) keys.add(`${stored.transaction.stationId}\u0000${stored.transaction.transactionId}`);
      }
      return keys;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound) return undefined;
      throw error;
    }
  }

  private async flush(partition: number): Promise<void> {
    const taken = this.takeAppendable(partition);
    try {
      await this.appendTaken(partition, taken);
    } catch (error) {
      // Whatever went wrong, no caller waits forever: unanswered records are "retry".
      this.observer.retried?.(partition, error);
      for (const item of taken) settle(item, 'unavailable');
    }
  }

  private async appendTaken(partition: number, taken: PendingAppend[]): Promise<void> {
    const deadline = Date.now() + this.options.appendDeadlineMs;
    let pending = await this.withoutStored(partition, taken, deadline);
    let attempt = 0;
    while (pending.length > 0) {
      const batchId = randomUUID();
      const payload = TransactionBatch.encode({ batchId, transactions: pending.map((p) => p.record) }).finish();
      this.ownBatches.set(batchId, undefined);
      const started = performance.now();
      // The same batch id and expected sequence on every retry: a retry of an append that did land
      // is either absorbed by the broker's msg-id dedup or refused as a wrong last sequence.
      for (;;) {
        try {
          const ack = await this.js.publish(Subjects.transactionPartition(partition), payload, {
            msgID: batchId,
            expect: { lastSubjectSequence: this.lastSequence[partition] },
            timeout: 5_000,
          });
          this.landed(partition, pending, batchId, ack.seq);
          this.observer.appended?.(partition, pending.length, performance.now() - started);
          return;
        } catch (error) {
          if (isWrongLastSequence(error)) {
            this.observer.conflict?.(partition);
            await this.catchUp(partition, deadline);
            const landedAt = this.ownBatches.get(batchId);
            if (landedAt !== undefined) {
              this.landed(partition, pending, batchId, landedAt);
              return;
            }
            this.ownBatches.delete(batchId);
            // Someone else appended: drop what they stored meanwhile, append the rest anew.
            pending = await this.withoutStored(partition, pending, deadline);
            break;
          }
          this.observer.retried?.(partition, error);
          attempt++;
          if (Date.now() >= deadline) {
            const landedAt = this.ownBatches.get(batchId);
            if (landedAt !== undefined) {
              this.landed(partition, pending, batchId, landedAt);
              return;
            }
            // Unknown whether it landed: the station is told to retry; if it did land, the tail
            // indexes it and the retry is reported duplicate.
            this.ownBatches.delete(batchId);
            for (const item of pending) settle(item, 'unavailable');
            return;
          }
          await sleep(retryDelayMs(attempt));
        }
      }
    }
  }

  private landed(partition: number, items: PendingAppend[], batchId: string, sequence: number): void {
    this.lastSequence[partition] = Math.max(this.lastSequence[partition], sequence);
    for (const item of items) {
      this.index.add(item.stationId, item.transactionId, sequence, item.occurredAtMs);
      settle(item, 'accepted');
    }
    this.sawOwnBatch(batchId, sequence);
  }

  /** Our appends are seen twice, at their ack and in the tail, in either order: forget one once both happened. */
  private sawOwnBatch(batchId: string, sequence: number): void {
    if (this.ownBatches.get(batchId) !== undefined) this.ownBatches.delete(batchId);
    else this.ownBatches.set(batchId, sequence);
  }

  private onTailed(message: JsMsg): void {
    const partition = partitionOfSubject(message.subject);
    if (partition !== undefined && partition < this.options.partitions) {
      this.lastSequence[partition] = Math.max(this.lastSequence[partition], message.seq);
      const batchId = message.headers?.get('Nats-Msg-Id') ?? '';
      if (this.ownBatches.has(batchId)) {
        // Our own append: already indexed at its ack (or about to be); no need to decode it again.
        this.sawOwnBatch(batchId, message.seq);
      } else {
        this.indexForeignBatch(message);
      }
    }
    this.tailedSequence = message.seq;
    for (let i = this.tailWaiters.length - 1; i >= 0; i--) {
      if (this.tailWaiters[i].sequence <= message.seq) this.tailWaiters.splice(i, 1)[0].resolve();
    }
  }

  private indexForeignBatch(message: JsMsg): void {
    let batch: TransactionBatch;
    try {
      batch = TransactionBatch.decode(message.data);
    } catch {
      return; // not ours to judge: consumers dead-letter undecodable stream messages
    }
    for (const ingested of batch.transactions) {
      const transaction = ingested.transaction;
      if (!transaction?.occurredAt) continue;
      this.index.add(transaction.stationId, transaction.transactionId, message.seq, transaction.occurredAt.getTime());
    }
  }

  /** The first stream sequence stored at or after `startTime`, else the next one to be written. */
  private async firstSequenceSince(startTime: Date): Promise<number> {
    const lastBefore = (await this.jsm.streams.info(Streams.transactions)).state.last_seq;
    const probe = await this.jsm.consumers.add(Streams.transactions, {
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: startTime.toISOString(),
      ack_policy: AckPolicy.None,
      filter_subject: Subjects.transactionsAll,
      inactive_threshold: 60_000_000_000,
    });
    try {
      if (probe.num_pending === 0) return lastBefore + 1;
      const first = await (await this.js.consumers.get(Streams.transactions, probe.name)).next({ expires: 5_000 });
      return first?.seq ?? lastBefore + 1;
    } finally {
      await this.jsm.consumers.delete(Streams.transactions, probe.name).catch(() => undefined);
    }
  }

  private async lastStoredInPartition(partition: number): Promise<{ sequence: number; time: Date } | undefined> {
    try {
      const message = await this.jsm.streams.getMessage(Streams.transactions, {
        last_by_subj: Subjects.transactionPartition(partition),
      });
      return message ? { sequence: message.seq, time: message.time } : undefined;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound) return undefined;
      throw error;
    }
  }

  /** Waits until the tail has read the partition's newest message; fails at `deadline` (the append then answers "retry"). */
  private async catchUp(partition: number, deadline: number): Promise<void> {
    const last = await this.lastStoredInPartition(partition);
    if (!last) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the stream tail did not reach sequence ${last.sequence} in time`)), Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([this.waitForTail(last.sequence), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private waitForTail(sequence: number): Promise<void> {
    if (sequence <= this.tailedSequence) return Promise.resolve();
    return new Promise((resolve) => this.tailWaiters.push({ sequence, resolve }));
  }
}
