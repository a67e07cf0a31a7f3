import type { ClickHouseClient } from '@clickhouse/client';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { Alert, CustomerSpendBatch, RECORD_KIND_HEADER, StationTrafficBatch, Streams, Subjects, TransactionBatch } from '@tollstream/contracts';
import { originalMsgIdOf, type DeadLetterPublisher } from '@tollstream/messaging';
import { insertBody, joinBodies, type InsertFormat, type RawBodyInserter } from './insert';
import { TsvBuffer } from './protobuf-wire';
import {
  alertColumns,
  alertRow,
  spendWindowColumns,
  spendWindowRows,
  trafficWindowColumns,
  trafficWindowRows,
  transactionColumns,
  transactionRows,
} from './rows';
import { assertDatabaseName } from './schema';
import { spendWindowTsv } from './spend-window-tsv';
import { transactionTsv } from './transaction-tsv';

export type WarehouseTable = 'transactions' | 'spend_windows' | 'traffic_windows' | 'alerts';
export type LoaderStreamName = 'transactions' | 'aggregates' | 'alerts';

const columnsOf: Record<WarehouseTable, readonly string[]> = {
  transactions: transactionColumns,
  spend_windows: spendWindowColumns,
  traffic_windows: trafficWindowColumns,
  alerts: alertColumns,
};

/** What the loader reports; the service turns it into metrics and logs. */
export interface LoaderObserver {
  /** An insert was confirmed by the warehouse. */
  inserted?(table: WarehouseTable, rows: number, seconds: number): void;
  /**
   * Messages of a stream were acknowledged after their rows were confirmed. `ingestedAtMs`: for every
   * transaction message, the oldest ingested_at of its rows (end-to-end latency = confirmedAtMs - it).
   */
  loaded?(stream: LoaderStreamName, messages: number, ingestedAtMs: readonly number[], confirmedAtMs: number): void;
  /** A message or record went to the dead letters. */
  deadLettered?(stream: LoaderStreamName, reasonCode: string): void;
  /** Messages of the stream not yet delivered to the loader (consumer lag), from the last delivery. */
  lag?(stream: LoaderStreamName, pendingMessages: number): void;
  /** Redelivered or replayed messages whose rows were already in the warehouse (not inserted again). */
  alreadyLoaded?(stream: LoaderStreamName, messages: number, rows: number): void;
  insertFailed?(table: WarehouseTable, error: unknown, attempt: number): void;
  /** Unexpected error while handling a message (the message is redelivered). */
  error?(stream: LoaderStreamName, error: unknown): void;
}

export interface WarehouseLoaderOptions {
  client: ClickHouseClient;
  /**
   * The embedded engine's byte insert (`WarehouseConnection.rawInsert`): the TabSeparated bodies
   * (transactions, spend windows) go to chDB as Buffers, without a conversion to a JavaScript string.
   * Unset: `client.exec`.
   */
  rawInsert?: RawBodyInserter;
  database: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  deadLetters: DeadLetterPublisher;
  /** Insert when this many rows are waiting (per stream). */
  maxBatchRows: number;
  /** Insert when the oldest waiting row has waited this long. */
  maxBatchDelayMs: number;
  /** Insert when this many stream messages are waiting (keeps unacknowledged messages bounded). */
  maxBatchMessages?: number;
  /** Messages pulled ahead of processing (per stream): bounds memory together with the batch size. */
  fetchAheadMessages?: number;
  /**
   * How long JetStream waits for an ack before redelivering (consumer ack_wait). After a crash the
   * messages the dead process held come again after this long. Default 30 s.
   */
  ackWaitMs?: number;
  /** Durable consumer names are `<prefix>-tx`, `<prefix>-agg`, `<prefix>-alerts`. */
  consumerPrefix?: string;
  /** Which streams to load (default all three). */
  streams?: readonly LoaderStreamName[];
  observer?: LoaderObserver;
  /**
   * Test hook: called after the warehouse confirmed an insert and before the messages are
   * acknowledged (crash tests kill the process here).
   */
  afterInsertBeforeAck?: (stream: LoaderStreamName) => void;
}

interface DecodedMessage {
  msg: JsMsg;
  /** Rows as JSONCompactEachRow lines, per table (window results and alerts from the generated decoder). */
  rows: Partial<Record<WarehouseTable, string[]>>;
  /**
   * Rows as TabSeparated, each ending with '\n', per table: transactions, and spend windows from the
   * fast path (spend-window-tsv.ts). Normally a view of the batch's body buffer (see BatchBodies).
   */
  tsv: Partial<Record<WarehouseTable, Buffer>>;
  /** All of a message's rows are in one table. */
  rowCount: number;
  /** Oldest ingested_at of a transaction message's rows. */
  oldestIngestedAtMs?: number;
}

interface StreamSpec {
  name: LoaderStreamName;
  stream: string;
  filterSubject: string;
  durableSuffix: string;
  tables: readonly WarehouseTable[];
  /** `body()`: the buffer of the batch being filled, where TabSeparated rows are written (one table per stream). */
  decode(msg: JsMsg, body: () => TsvBuffer): Promise<DecodedMessage | undefined>;
}

/** A ClickHouse string literal. */
function sqlString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Lines as one body, each line ending with '\n' (the form of transaction-tsv.ts). */
function linesBody(lines: readonly string[]): Buffer {
  return Buffer.from(lines.length === 0 ? '' : `${lines.join('\n')}\n`);
}

/**
 * The TabSeparated rows of the batch being filled, written straight into one Buffer that becomes the
 * insert body: each message's rows are a view of it (no copy per message), and `joinBodies` gives the
 * whole batch as one view (no copy per batch) unless a message was dropped or rebuilt in between (the
 * already-loaded check; then a copy, as before). A new Buffer per batch, sized by the previous batch:
 * the insert in flight keeps its own, and no byte of it is ever written again.
 */
class BatchBodies {
  private current?: TsvBuffer;
  private nextBytes = 1 << 16;

  /** The buffer of the batch being filled (created on first use). */
  readonly body = (): TsvBuffer => (this.current ??= new TsvBuffer(this.nextBytes));

  /** The batch was cut: the next one gets a new buffer, 1.25x the size of this one (grown if needed). */
  cut(): void {
    if (!this.current) return;
    this.nextBytes = Math.max(1 << 16, Math.ceil(this.current.length * 1.25));
    this.current = undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An error the warehouse answered (as opposed to a connection problem): retrying the same rows will not help. */
function isRejection(error: unknown): boolean {
  const type = (error as { type?: unknown } | undefined)?.type;
  return typeof type === 'string' && /PARSE|TYPE_MISMATCH|CANNOT|INCORRECT|TOO_LARGE|ILLEGAL|BAD_ARGUMENTS|NO_SUCH_COLUMN/.test(type);
}

/**
 * Loads the transaction stream, the window results and the alerts into the warehouse, exactly once
 * (docs/adr/0007-warehouse-exactly-once.md): per stream, a durable pull consumer; rows are batched by
 * size and time; one insert in flight per stream while the next batch fills (backpressure: the next
 * batch waits for the previous insert, and nothing more is pulled than fetchAheadMessages); messages
 * are acknowledged only after the warehouse confirmed the insert.
 */
export class WarehouseLoader {
  private readonly pipelines: StreamPipeline[] = [];
  private readonly database: string;
  private transactionsHighWater = 0;

  constructor(private readonly options: WarehouseLoaderOptions) {
    this.database = assertDatabaseName(options.database);
  }

  /** Creates the durable consumers if needed and starts loading. */
  async start(): Promise<void> {
    const wanted = new Set(this.options.streams ?? ['transactions', 'aggregates', 'alerts']);
    const result = await this.options.client.query({
      query: `SELECT max(stream_sequence) AS seq FROM \`${this.database}\`.transactions`,
      format: 'JSONEachRow',
    });
    this.transactionsHighWater = Number((await result.json<{ seq: string | number }>())[0]?.seq ?? 0);
    for (const spec of this.specs()) {
      if (!wanted.has(spec.name)) continue;
      const durable = `${this.options.consumerPrefix ?? 'warehouse-loader'}-${spec.durableSuffix}`;
      const consumer = await this.ensureConsumer(spec, durable);
      const pipeline = new StreamPipeline(spec, consumer, durable, this.options, this.database, (batch) => this.dropAlreadyLoaded(spec, batch));
      this.pipelines.push(pipeline);
    }
    for (const pipeline of this.pipelines) await pipeline.start();
  }

  /** Stops pulling, inserts and acknowledges what is in hand, then resolves. */
  async stop(): Promise<void> {
    await Promise.all(this.pipelines.map((pipeline) => pipeline.stop()));
  }

  /** Resolves when a pipeline fails for good (it does not, short of a bug); for the service to exit. */
  get failed(): Promise<Error> {
    return Promise.race(this.pipelines.map((pipeline) => pipeline.failed));
  }

  private async ensureConsumer(spec: StreamSpec, durable: string): Promise<Consumer> {
    const ackWait = (this.options.ackWaitMs ?? 30_000) * 1_000_000;
    try {
      const info = await this.options.jsm.consumers.info(spec.stream, durable);
      if (info.config.ack_wait !== ackWait) await this.options.jsm.consumers.update(spec.stream, durable, { ack_wait: ackWait });
    } catch (error) {
      if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.ConsumerNotFound) throw error;
      await this.options.jsm.consumers.add(spec.stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: spec.filterSubject,
        ack_wait: ackWait,
        max_ack_pending: 50_000,
        max_deliver: -1,
      });
    }
    return this.options.js.consumers.get(spec.stream, durable);
  }

  /**
   * Exactly once for transactions beyond the deduplication token: a message delivered again after a
   * crash, or replayed from before this process started, is skipped when all of its rows are already
   * stored (counted by stream_sequence). For a message only partly found (an insert split into parts
   * that crashed midway, or rows a background merge replaced by another copy of the same transaction),
   * each row is looked up by its identity (station_id, transaction_id) and only the missing ones are
   * inserted.
   */
  private async dropAlreadyLoaded(spec: StreamSpec, batch: DecodedMessage[]): Promise<DecodedMessage[]> {
    if (spec.name !== 'transactions') return batch;
    const kept = await this.withoutStoredRows(batch);
    // From now on a delivery of these messages is a suspect too: an insert the engine stored but did
    // not confirm (then retried), or a redelivery after the broker lost its acknowledgements (a
    // nats-server crash resets the consumer's acknowledged floor and delivery counts), is looked up
    // instead of inserted again under a different token.
    for (const item of batch) this.transactionsHighWater = Math.max(this.transactionsHighWater, item.msg.seq);
    return kept;
  }

  private async withoutStoredRows(batch: DecodedMessage[]): Promise<DecodedMessage[]> {
    const suspects = batch.filter(
      (item) => item.rowCount > 0 && (item.msg.seq <= this.transactionsHighWater || item.msg.info.deliveryCount > 1),
    );
    if (suspects.length === 0) return batch;
    const table = `\`${this.database}\`.transactions`;
    const counted = await this.options.client.query({
      query: `SELECT stream_sequence AS seq, count() AS n FROM ${table}
              WHERE stream_sequence IN (${suspects.map((item) => item.msg.seq).join(',')}) GROUP BY stream_sequence`,
      format: 'JSONEachRow',
    });
    const stored = new Map((await counted.json<{ seq: string | number; n: string | number }>()).map((row) => [Number(row.seq), Number(row.n)]));
    const replaced = new Map<DecodedMessage, DecodedMessage>();
    const partial: DecodedMessage[] = [];
    for (const item of suspects) {
      const n = stored.get(item.msg.seq) ?? 0;
      if (n >= item.rowCount) replaced.set(item, { ...item, rows: {}, tsv: {}, rowCount: 0 });
      else if (n > 0 || item.msg.info.deliveryCount > 1 || item.msg.seq <= this.transactionsHighWater) partial.push(item);
    }
    if (partial.length > 0) {
      // Rare (crash recovery): the rows and identities again, through the generated decoder (records it
      // refuses were dead-lettered at the first decode and are not rows).
      const mapped = new Map(partial.map((item) => [item, transactionRows(TransactionBatch.decode(item.msg.data), item.msg.seq)]));
      const tuples = partial.flatMap((item) => mapped.get(item)?.keys ?? []).map(([station, id]) => `(${sqlString(station)}, ${sqlString(id)})`);
      const present = new Set<string>();
      for (let start = 0; start < tuples.length; start += 10_000) {
        const found = await this.options.client.query({
          query: `SELECT DISTINCT station_id, transaction_id FROM ${table}
                  WHERE (station_id, transaction_id) IN (${tuples.slice(start, start + 10_000).join(',')})`,
          format: 'JSONCompactEachRow',
        });
        for (const [station, id] of await found.json<[string, string]>()) present.add(`${station}\u0000${id}`);
      }
      for (const item of partial) {
        const keys = mapped.get(item)?.keys ?? [];
        const lines = mapped.get(item)?.lines ?? [];
        const keptLines = lines.filter((_line, index) => !present.has(`${keys[index]?.[0]}\u0000${keys[index]?.[1]}`));
        if (keptLines.length < lines.length) replaced.set(item, { ...item, tsv: { transactions: linesBody(keptLines) }, rowCount: keptLines.length });
      }
    }
    if (replaced.size === 0) return batch;
    let rows = 0;
    for (const [original, kept] of replaced) rows += original.rowCount - kept.rowCount;
    this.options.observer?.alreadyLoaded?.('transactions', replaced.size, rows);
    return batch.map((item) => replaced.get(item) ?? item);
  }

  private specs(): StreamSpec[] {
    /** Without `record`, the whole message is dead-lettered, with its message id: what a re-drive may republish. */
    const dead = async (stream: LoaderStreamName, msg: JsMsg, reasonCode: string, reason: string, record?: Uint8Array, stationId?: string) => {
      const original = record ?? msg.data;
      const originalMsgId = record === undefined ? originalMsgIdOf(msg) : undefined;
      await this.options.deadLetters.publish({ reasonCode, reason, original, originalSubject: msg.subject, originalMsgId, stationId });
      this.options.observer?.deadLettered?.(stream, reasonCode);
    };
    return [
      {
        name: 'transactions',
        stream: Streams.transactions,
        filterSubject: Subjects.transactionsAll,
        durableSuffix: 'tx',
        tables: ['transactions'],
        decode: async (msg, body) => {
          // The common case straight from the bytes; anything else through the generated decoder.
          const fast = transactionTsv(msg.data, msg.seq, body());
          if (fast) return { msg, rows: {}, tsv: { transactions: fast.body }, rowCount: fast.rowCount, oldestIngestedAtMs: fast.oldestIngestedAtMs };
          let batch: TransactionBatch;
          try {
            batch = TransactionBatch.decode(msg.data);
          } catch (error) {
            await dead('transactions', msg, 'UNDECODABLE', `cannot decode tolls.stream.v1.TransactionBatch: ${errorText(error)}`);
            return undefined;
          }
          const mapped = transactionRows(batch, msg.seq);
          for (const invalid of mapped.invalid) {
            await dead('transactions', msg, invalid.reasonCode, invalid.reason, invalid.original, invalid.stationId);
          }
          return {
            msg,
            rows: {},
            tsv: { transactions: body().lines(mapped.lines) },
            rowCount: mapped.lines.length,
            oldestIngestedAtMs: mapped.oldestIngestedAtMs,
          };
        },
      },
      {
        name: 'aggregates',
        stream: Streams.aggregates,
        filterSubject: Subjects.aggregatesAll,
        durableSuffix: 'agg',
        tables: ['spend_windows', 'traffic_windows'],
        decode: async (msg, body) => {
          const kind = /^tolls\.agg\.(spend|traffic|late)\./.exec(msg.subject)?.[1];
          // Too-late transactions are already in TOLL_TX (and so in `transactions`).
          if (kind === 'late') return undefined;
          // Threshold commands share billing's shard subjects (ADR 0013); thresholds reach the
          // warehouse as SpendingThresholdChanged events, not from here.
          if (msg.headers?.get(RECORD_KIND_HEADER)) return undefined;
          try {
            if (kind === 'spend') {
              // About one spend window per transaction: the common case straight from the bytes.
              const fast = spendWindowTsv(msg.data, msg.seq, body());
              if (fast) return { msg, rows: {}, tsv: { spend_windows: fast.body }, rowCount: fast.rowCount };
              const rows = spendWindowRows(CustomerSpendBatch.decode(msg.data), msg.seq);
              return { msg, rows: { spend_windows: rows }, tsv: {}, rowCount: rows.length };
            }
            if (kind === 'traffic') {
              const rows = trafficWindowRows(StationTrafficBatch.decode(msg.data), msg.seq);
              return { msg, rows: { traffic_windows: rows }, tsv: {}, rowCount: rows.length };
            }
          } catch (error) {
            await dead('aggregates', msg, 'UNDECODABLE', `cannot decode the window results on ${msg.subject}: ${errorText(error)}`);
            return undefined;
          }
          await dead('aggregates', msg, 'UNKNOWN_SUBJECT', `the warehouse loader does not know subject ${msg.subject}`);
          return undefined;
        },
      },
      {
        name: 'alerts',
        stream: Streams.alerts,
        filterSubject: Subjects.alertsAll,
        durableSuffix: 'alerts',
        tables: ['alerts'],
        decode: async (msg) => {
          let alert: Alert;
          try {
            alert = Alert.decode(msg.data);
          } catch (error) {
            await dead('alerts', msg, 'UNDECODABLE', `cannot decode tolls.alerts.v1.Alert: ${errorText(error)}`);
            return undefined;
          }
          const row = alertRow(alert, msg.subject, msg.seq);
          if (!row.line) {
            await dead('alerts', msg, 'INVALID_ALERT', row.problem ?? 'invalid alert');
            return undefined;
          }
          return { msg, rows: { alerts: [row.line] }, tsv: {}, rowCount: 1 };
        },
      },
    ];
  }
}

/** One durable consumer, its batch being filled and the one insert in flight. */
class StreamPipeline {
  private messages?: ConsumerMessages;
  private pending: DecodedMessage[] = [];
  /** Messages pending or being inserted, by stream sequence: a redelivery of one of them is not a new row. */
  private readonly held = new Map<number, DecodedMessage>();
  private pendingRows = 0;
  private pendingSince = 0;
  private readonly bodies = new BatchBodies();
  private insertRunning?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private done: Promise<void> = Promise.resolve();
  private stopping = false;
  private rejectFailed: (error: Error) => void = () => undefined;
  readonly failed = new Promise<Error>((resolve) => {
    this.rejectFailed = resolve;
  });
  private readonly maxBatchMessages: number;

  constructor(
    private readonly spec: StreamSpec,
    private readonly consumer: Consumer,
    private readonly durable: string,
    private readonly options: WarehouseLoaderOptions,
    private readonly database: string,
    private readonly dropAlreadyLoaded: (batch: DecodedMessage[]) => Promise<DecodedMessage[]>,
  ) {
    this.maxBatchMessages = options.maxBatchMessages ?? 10_000;
  }

  async start(): Promise<void> {
    this.messages = await this.consumer.consume({ max_messages: this.options.fetchAheadMessages ?? 1_000 });
    const tick = Math.max(10, Math.min(100, Math.floor(this.options.maxBatchDelayMs / 4)));
    this.timer = setInterval(() => {
      if (!this.insertRunning && this.pending.length > 0 && Date.now() - this.pendingSince >= this.options.maxBatchDelayMs) {
        this.flush().catch((error: unknown) => this.options.observer?.error?.(this.spec.name, error));
      }
    }, tick);
    this.done = this.run(this.messages).catch((error: unknown) => {
      this.rejectFailed(error instanceof Error ? error : new Error(String(error)));
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.messages?.close();
    await this.done;
  }

  private async run(messages: ConsumerMessages): Promise<void> {
    for await (const msg of messages) {
      this.options.observer?.lag?.(this.spec.name, msg.info.pending);
      const heldCopy = this.held.get(msg.seq);
      if (heldCopy) {
        // Redelivered (ack_wait passed) while still in hand: acknowledge the newest delivery later.
        heldCopy.msg = msg;
        continue;
      }
      let decoded: DecodedMessage | undefined;
      try {
        decoded = await this.spec.decode(msg, this.bodies.body);
      } catch (error) {
        // Dead-letter publishing failed (broker trouble): let the message come again.
        this.options.observer?.error?.(this.spec.name, error);
        msg.nak(1_000);
        continue;
      }
      if (!decoded || decoded.rowCount === 0) {
        // Poison (already dead-lettered), a heartbeat, a watermark-only or too-late message: nothing to load.
        msg.ack();
        continue;
      }
      if (this.pending.length === 0) this.pendingSince = Date.now();
      this.pending.push(decoded);
      this.held.set(msg.seq, decoded);
      this.pendingRows += decoded.rowCount;
      if (this.pendingRows >= this.options.maxBatchRows || this.pending.length >= this.maxBatchMessages) await this.flush();
    }
    clearInterval(this.timer);
    await this.flush();
    while (this.insertRunning) await this.insertRunning;
  }

  /** Waits for the insert in flight (at most one), then starts inserting what is pending. */
  private async flush(): Promise<void> {
    while (this.insertRunning) await this.insertRunning;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingRows = 0;
    this.bodies.cut();
    const running: Promise<void> = this.load(batch).finally(() => {
      if (this.insertRunning === running) this.insertRunning = undefined;
    });
    this.insertRunning = running;
  }

  private async load(batch: DecodedMessage[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const toInsert = await this.dropAlreadyLoaded(batch);
        await this.insertAll(toInsert);
        break;
      } catch (error) {
        const table = this.spec.tables[0];
        this.options.observer?.insertFailed?.(table, error, attempt);
        if (isRejection(error) && attempt >= 3) {
          await this.loadOneByOne(batch);
          return;
        }
        if (this.stopping && attempt >= 3) {
          // Not acknowledged: redelivered to the next loader.
          for (const item of batch) this.held.delete(item.msg.seq);
          return;
        }
        for (const item of batch) item.msg.working();
        await sleep(Math.min(5_000, 100 * 2 ** attempt));
      }
    }
    this.acknowledge(batch);
  }

  private async insertAll(batch: DecodedMessage[]): Promise<void> {
    for (const table of this.spec.tables) {
      await this.insertPart(batch, table, 'TabSeparated');
      await this.insertPart(batch, table, 'JSONCompactEachRow');
    }
  }

  /**
   * One insert of the batch's rows of `table` in `format`. A table's rows can come in both formats
   * (spend windows the fast path declined): the two inserts' tokens differ, as no message has rows in both.
   */
  private async insertPart(batch: DecodedMessage[], table: WarehouseTable, format: InsertFormat): Promise<void> {
    const lines: string[] = [];
    const bodies: Buffer[] = [];
    let rowCount = 0;
    let first = 0;
    let last = 0;
    for (const item of batch) {
      if (format === 'TabSeparated') {
        const body = item.tsv[table];
        if (!body || item.rowCount === 0) continue;
        bodies.push(body);
        rowCount += item.rowCount;
      } else {
        const rows = item.rows[table];
        if (!rows || rows.length === 0) continue;
        for (const line of rows) lines.push(line);
        rowCount += rows.length;
      }
      if (first === 0) first = item.msg.seq;
      last = item.msg.seq;
    }
    if (rowCount === 0) return;
    // Deterministic for the same messages: a re-insert after a crash is dropped by the engine.
    const token = `${this.durable}:${table}:${first}-${last}:${rowCount}`;
    const body = format === 'TabSeparated' ? joinBodies(bodies) : lines.join('\n');
    const started = performance.now();
    await insertBody(this.options.client, this.database, table, columnsOf[table], body, token, format, this.options.rawInsert);
    this.options.observer?.inserted?.(table, rowCount, (performance.now() - started) / 1000);
  }

  /** After repeated rejections: message by message, dead-lettering the ones the warehouse refuses. */
  private async loadOneByOne(batch: DecodedMessage[]): Promise<void> {
    for (const item of batch) {
      try {
        await this.insertAll(await this.dropAlreadyLoaded([item]));
      } catch (error) {
        if (!isRejection(error)) throw error;
        await this.options.deadLetters.publish({
          reasonCode: 'WAREHOUSE_REJECTED',
          reason: `the warehouse refused the rows: ${errorText(error)}`.slice(0, 2_000),
          original: item.msg.data,
          originalSubject: item.msg.subject,
          originalMsgId: originalMsgIdOf(item.msg),
        });
        this.options.observer?.deadLettered?.(this.spec.name, 'WAREHOUSE_REJECTED');
      }
    }
    this.acknowledge(batch);
  }

  private acknowledge(batch: DecodedMessage[]): void {
    this.options.afterInsertBeforeAck?.(this.spec.name);
    const confirmedAt = Date.now();
    for (const item of batch) {
      item.msg.ack();
      this.held.delete(item.msg.seq);
    }
    const ingestedAt: number[] = [];
    for (const item of batch) if (item.oldestIngestedAtMs !== undefined && Number.isFinite(item.oldestIngestedAtMs)) ingestedAt.push(item.oldestIngestedAtMs);
    this.options.observer?.loaded?.(this.spec.name, batch.length, ingestedAt, confirmedAt);
  }
}
