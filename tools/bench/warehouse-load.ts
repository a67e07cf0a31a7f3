/**
 * Warehouse phase of the bench: the raw chDB insert rate of a set of rows, the warehouse-loader's rate
 * on a pre-filled transaction stream of the same rows, and data freshness under a steady offered load.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Streams, Subjects, TransactionBatch, VehicleClass, type IngestedTransaction } from '@tollstream/contracts';
import { declareTopology, partitionForStation, provisionTopology } from '@tollstream/messaging';
import { startService, tempDir, waitFor } from '@tollstream/testing';
import {
  applyMigrations,
  insertBody,
  insertLines,
  openWarehouse,
  queryThroughEndpoint,
  readQueryEndpointFile,
  transactionColumns,
  transactionRows,
  transactionTsv,
} from '@tollstream/warehouse';
import { histogramBuckets, readMetrics } from '@tollstream/service-kit';
import { microsecondsPerRecord } from './machine-limit';
import { cpuSeconds, histogramQuantile, peakRssMiB } from './stats';

export interface WarehouseBenchOptions {
  natsUrl: string;
  /** nats-server's process (its CPU is reported beside the loader's); undefined when not local. */
  natsPid: number | undefined;
  /** Transactions pre-filled in the stream (and inserted raw). */
  rows: number;
  recordsPerMessage: number;
  batchMaxRows: number;
  steadyRecordsPerSecond: number;
  steadySeconds: number;
}

export interface WarehouseBenchResults {
  rows: number;
  recordsPerMessage: number;
  batchMaxRows: number;
  /** The loader's insert path: TabSeparated bodies as Buffers through chDB's raw insert. */
  rawChdbInsertRowsPerSecond: number;
  /** The same rows as one string through client.exec (the loader's path before the byte insert). */
  rawChdbExecRowsPerSecond: number;
  loaderRowsPerSecond: number;
  loaderShareOfRaw: number;
  loaderCpuCoresUsed?: number;
  /** CPU per row stored (µs) of the loader, and of nats-server delivering them, draining the pre-filled stream. */
  loaderCpuMicrosecondsPerRecord?: number;
  natsServerCpuMicrosecondsPerRecord?: number;
  loaderPeakRssMiB?: number;
  countMs: { raw: number; final: number };
  steady: {
    offeredRecordsPerSecond: number;
    seconds: number;
    publishedRecords: number;
    storedRecords: number;
    /** From ingested_at to the insert confirmed, per stream message (loader histogram, interpolated). */
    ingestToStoredSeconds: { p50: number; p99: number };
    /** From ingested_at to the start of the insert holding the row (loaded_at, per row, in ClickHouse). */
    ingestToInsertStartSeconds: { p50: number; p99: number };
  };
}

const PARTITIONS = 8;
const stations = Array.from({ length: 64 }, (_, i) => `st-${String(i).padStart(3, '0')}`);

function aRecord(id: string, index: number, ingestedAt: Date): IngestedTransaction {
  const stationId = stations[index % stations.length];
  return {
    transaction: {
      transactionId: id,
      stationId,
      laneId: `L${index % 4}`,
      tagId: `TAG-${index % 50_000}`,
      plate: `PL ${index % 9000}`,
      accountId: `acct-${index % 50_000}`,
      vehicleClass: (index % 5) + 1 as VehicleClass,
      amountMinor: 150 + (index % 700),
      currency: 'USD',
      occurredAt: new Date(ingestedAt.getTime() - 1_000 - (index % 60_000)),
    },
    ingestedAt,
    partition: partitionForStation(stationId, PARTITIONS),
  };
}

/** Packed messages per partition, the way the ingestor stores them. */
function packedMessages(prefix: string, from: number, count: number, perMessage: number, ingestedAt: Date): Array<{ subject: string; id: string; data: Uint8Array }> {
  const byPartition = new Map<number, IngestedTransaction[]>();
  for (let i = from; i < from + count; i++) {
    const record = aRecord(`${prefix}-${i}`, i, ingestedAt);
    const list = byPartition.get(record.partition) ?? [];
    list.push(record);
    byPartition.set(record.partition, list);
  }
  const messages: Array<{ subject: string; id: string; data: Uint8Array }> = [];
  for (const [partition, records] of byPartition) {
    for (let start = 0; start < records.length; start += perMessage) {
      const id = `${prefix}-${partition}-${from}-${start}`;
      messages.push({ subject: Subjects.transactionPartition(partition), id, data: TransactionBatch.encode({ batchId: id, transactions: records.slice(start, start + perMessage) }).finish() });
    }
  }
  return messages;
}

/** Publishes with retries (same Nats-Msg-Id, so a retry of a stored message is absorbed by the broker). */
async function publishOne(js: JetStreamClient, message: { subject: string; id: string; data: Uint8Array }): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await js.publish(message.subject, message.data, { msgID: message.id, timeout: 10_000 });
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}

async function publishAll(js: JetStreamClient, messages: Array<{ subject: string; id: string; data: Uint8Array }>): Promise<void> {
  const pending = new Set<Promise<void>>();
  for (const message of messages) {
    const publish: Promise<void> = publishOne(js, message).finally(() => pending.delete(publish));
    pending.add(publish);
    if (pending.size >= 64) await Promise.race(pending);
  }
  await Promise.all(pending);
}


const round = (value: number, digits = 3): number => Math.round(value * 10 ** digits) / 10 ** digits;

async function consumerState(jsm: JetStreamManager, durable: string) {
  return jsm.consumers.info(Streams.transactions, durable).catch(() => undefined);
}

export async function runWarehouseBench(options: WarehouseBenchOptions, log: (text: string) => void): Promise<WarehouseBenchResults> {
  const nc = await connect({ servers: options.natsUrl });
  const jsm = await jetstreamManager(nc);
  await provisionTopology(jsm, declareTopology({ transactionPartitions: PARTITIONS }));
  const js = jetstream(nc);
  const rawDir = await tempDir('bench-raw-chdb');
  const loaderDir = await tempDir('bench-loader');
  try {
    log(`building and publishing ${options.rows} transactions in messages of ${options.recordsPerMessage}... `);
    const messages = packedMessages('pre', 0, options.rows, options.recordsPerMessage, new Date());
    await publishAll(js, messages);
    log('done\n');

    // Raw chDB: the same rows, already as TabSeparated bodies (built as the loader builds them, not
    // timed), inserted directly into the same table with the same settings, cut into batches of the
    // loader's size at message boundaries (insert time only). Then the same rows again as one string
    // each through client.exec, into a second database (the path before the byte insert).
    log('raw chDB insert of the same rows... ');
    const bodies = messages.map((message, index) => {
      const tsv = transactionTsv(message.data, index + 1);
      if (!tsv) throw new Error('bench rows must take the fast path');
      return tsv;
    });
    const chunks: Array<{ body: Buffer; rows: number }> = [];
    for (let index = 0; index < bodies.length; ) {
      const parts: Buffer[] = [];
      let rows = 0;
      while (index < bodies.length && rows < options.batchMaxRows) {
        parts.push(bodies[index].body);
        rows += bodies[index].rowCount;
        index++;
      }
      chunks.push({ body: Buffer.concat(parts), rows });
    }
    const totalRows = chunks.reduce((sum, chunk) => sum + chunk.rows, 0);
    const raw = await openWarehouse({ dataDir: rawDir.path });
    let rawSeconds = 0;
    let execSeconds = 0;
    try {
      await applyMigrations(raw.client, 'bench_raw');
      for (const [n, chunk] of chunks.entries()) {
        const began = performance.now();
        await insertBody(raw.client, 'bench_raw', 'transactions', transactionColumns, chunk.body, `raw-${n}`, 'TabSeparated', raw.rawInsert);
        rawSeconds += (performance.now() - began) / 1000;
      }
      await applyMigrations(raw.client, 'bench_raw_exec');
      const lines = messages.flatMap((message, index) => transactionRows(TransactionBatch.decode(message.data), index + 1).lines);
      for (let start = 0, n = 0; start < lines.length; start += options.batchMaxRows, n++) {
        const chunk = lines.slice(start, start + options.batchMaxRows);
        const began = performance.now();
        await insertLines(raw.client, 'bench_raw_exec', 'transactions', transactionColumns, chunk, `raw-exec-${n}`, 'TabSeparated');
        execSeconds += (performance.now() - began) / 1000;
      }
    } finally {
      await raw.close();
    }
    const rawRate = Math.round(totalRows / rawSeconds);
    const execRate = Math.round(totalRows / execSeconds);
    log(`${rawRate} rows/s (string through client.exec: ${execRate} rows/s)\n`);

    log('warehouse-loader on the pre-filled stream... ');
    const durable = 'bench-loader-tx';
    const loader = await startService({
      app: 'warehouse-loader',
      httpPortVariable: 'WAREHOUSE_HTTP_PORT',
      env: {
        NATS_URL: options.natsUrl,
        WAREHOUSE_DATA_DIR: loaderDir.path,
        WAREHOUSE_DATABASE: 'bench',
        WAREHOUSE_CONSUMER_PREFIX: 'bench-loader',
        WAREHOUSE_BATCH_MAX_ROWS: String(options.batchMaxRows),
        TOLL_TX_PARTITIONS: String(PARTITIONS),
        LOG_LEVEL: 'info',
      },
      readyTimeoutMs: 120_000,
    });
    const cpuBefore = cpuSeconds(loader.pid) ?? 0;
    const natsPid = options.natsPid;
    const natsCpuBefore = natsPid === undefined ? undefined : cpuSeconds(natsPid);
    let firstDeliveryAt = 0;
    let doneAt = 0;
    await waitFor(
      async () => {
        const info = await consumerState(jsm, durable);
        if (!info) return false;
        if (firstDeliveryAt === 0 && info.delivered.stream_seq > 0) firstDeliveryAt = performance.now();
        if (info.num_pending === 0 && info.num_ack_pending === 0) {
          doneAt = performance.now();
          return true;
        }
        return false;
      },
      { timeoutMs: 600_000, intervalMs: 20, description: 'loader drained the pre-filled stream' },
    );
    const loaderSeconds = (doneAt - firstDeliveryAt) / 1000;
    const loaderCpu = (cpuSeconds(loader.pid) ?? 0) - cpuBefore;
    const natsCpuAfter = natsPid === undefined ? undefined : cpuSeconds(natsPid);
    const natsCpu = natsCpuAfter === undefined || natsCpuBefore === undefined ? undefined : natsCpuAfter - natsCpuBefore;
    const loaderRate = Math.round(options.rows / loaderSeconds);
    log(`${loaderRate} rows/s\n`);

    const endpoint = readQueryEndpointFile(loaderDir.path);
    if (!endpoint) throw new Error('the loader wrote no query endpoint file');
    const stored = Number((await queryThroughEndpoint(endpoint, 'SELECT count() FROM bench.transactions')).rows[0]?.[0]);
    if (stored !== options.rows) throw new Error(`loader stored ${stored} rows, expected ${options.rows}`);
    const countRaw = await queryThroughEndpoint(endpoint, 'SELECT count() FROM bench.transactions');
    const countFinal = await queryThroughEndpoint(endpoint, 'SELECT count() FROM bench.transactions_unique');

    log(`steady ${options.steadyRecordsPerSecond} records/s for ${options.steadySeconds} s... `);
    const url = `http://127.0.0.1:${loader.httpPort}`;
    const before = histogramBuckets(await readMetrics(`${url}/metrics`), 'tollstream_warehouse_ingest_to_stored_seconds');
    const perTick = Math.round(options.steadyRecordsPerSecond / 20); // every 50 ms
    const steadyStart = performance.now();
    let published = 0;
    const inFlight = new Set<Promise<void>>();
    for (let tick = 0; performance.now() - steadyStart < options.steadySeconds * 1000; tick++) {
      const due = steadyStart + tick * 50;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      for (const message of packedMessages(`steady-${tick}`, published, perTick, options.recordsPerMessage, new Date())) {
        const publish: Promise<void> = publishOne(js, message).finally(() => inFlight.delete(publish));
        inFlight.add(publish);
      }
      published += perTick;
    }
    await Promise.all(inFlight);
    await waitFor(async () => {
      const info = await consumerState(jsm, durable);
      return info !== undefined && info.num_pending === 0 && info.num_ack_pending === 0;
    }, { timeoutMs: 120_000, intervalMs: 50, description: 'loader caught up after the steady phase' });
    const after = histogramBuckets(await readMetrics(`${url}/metrics`), 'tollstream_warehouse_ingest_to_stored_seconds');
    const perRow = await queryThroughEndpoint(
      endpoint,
      `SELECT quantiles(0.5, 0.99)(dateDiff('millisecond', ingested_at, loaded_at) / 1000) AS q, count() AS n
       FROM bench.transactions WHERE startsWith(transaction_id, 'steady-')`,
    );
    const [p50Row, p99Row] = (perRow.rows[0]?.[0] as number[]) ?? [Number.NaN, Number.NaN];
    log('done\n');
    const peak = peakRssMiB(loader.pid);
    await loader.stop();
    return {
      rows: options.rows,
      recordsPerMessage: options.recordsPerMessage,
      batchMaxRows: options.batchMaxRows,
      rawChdbInsertRowsPerSecond: rawRate,
      rawChdbExecRowsPerSecond: execRate,
      loaderRowsPerSecond: loaderRate,
      loaderShareOfRaw: round(loaderRate / rawRate, 2),
      loaderCpuCoresUsed: round(loaderCpu / loaderSeconds, 2),
      loaderCpuMicrosecondsPerRecord: microsecondsPerRecord(loaderCpu, options.rows),
      natsServerCpuMicrosecondsPerRecord: microsecondsPerRecord(natsCpu, options.rows),
      loaderPeakRssMiB: peak === undefined ? undefined : Math.round(peak),
      countMs: { raw: countRaw.elapsedMs, final: countFinal.elapsedMs },
      steady: {
        offeredRecordsPerSecond: options.steadyRecordsPerSecond,
        seconds: options.steadySeconds,
        publishedRecords: published,
        storedRecords: Number(perRow.rows[0]?.[1]),
        ingestToStoredSeconds: {
          p50: round(histogramQuantile(before, after, 0.5).value),
          p99: round(histogramQuantile(before, after, 0.99).value),
        },
        ingestToInsertStartSeconds: { p50: round(Number(p50Row)), p99: round(Number(p99Row)) },
      },
    };
  } finally {
    await nc.close();
    await rawDir.remove();
    await loaderDir.remove();
  }
}
