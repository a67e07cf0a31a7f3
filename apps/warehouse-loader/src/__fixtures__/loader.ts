import { createClient } from '@clickhouse/client';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  Streams,
  Subjects,
  TransactionBatch,
  type IngestedTransaction,
  type TollTransaction,
} from '@tollstream/contracts';
import { declareTopology, partitionForStation, provisionTopology } from '@tollstream/messaging';
import { startService, waitFor, type ServiceProcess } from '@tollstream/testing';
import { queryThroughEndpoint, readQueryEndpointFile, type QueryResultTable } from '@tollstream/warehouse';

export const PARTITIONS = 4;

export interface Broker {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

export async function connectBroker(url: string): Promise<Broker> {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  await provisionTopology(jsm, declareTopology({ transactionPartitions: PARTITIONS }));
  return { nc, js: jetstream(nc), jsm };
}

/** Publishes transactions the way the ingestor stores them: packed TransactionBatches per partition. */
export async function publishTransactions(
  js: JetStreamClient,
  transactions: readonly TollTransaction[],
  options: { perMessage?: number; batchPrefix: string; ingestedAt?: Date },
): Promise<number> {
  const byPartition = new Map<number, IngestedTransaction[]>();
  for (const transaction of transactions) {
    const partition = partitionForStation(transaction.stationId, PARTITIONS);
    const list = byPartition.get(partition) ?? [];
    list.push({ transaction, ingestedAt: options.ingestedAt ?? new Date(), partition });
    byPartition.set(partition, list);
  }
  let messages = 0;
  for (const [partition, records] of byPartition) {
    const size = options.perMessage ?? 250;
    for (let start = 0; start < records.length; start += size) {
      const batchId = `${options.batchPrefix}-${partition}-${start}`;
      const data = TransactionBatch.encode({ batchId, transactions: records.slice(start, start + size) }).finish();
      await js.publish(Subjects.transactionPartition(partition), data, { msgID: batchId });
      messages++;
    }
  }
  return messages;
}

export async function publishHeartbeat(js: JetStreamClient, partition: number, id: string): Promise<void> {
  await js.publish(Subjects.transactionPartition(partition), TransactionBatch.encode({ batchId: `heartbeat-${id}`, transactions: [] }).finish(), {
    msgID: `heartbeat-${id}`,
  });
}

export function startLoader(env: Record<string, string>): Promise<ServiceProcess> {
  return startService({
    app: 'warehouse-loader',
    httpPortVariable: 'WAREHOUSE_HTTP_PORT',
    env: {
      LOG_LEVEL: 'info',
      TOLL_TX_PARTITIONS: String(PARTITIONS),
      WAREHOUSE_BATCH_MAX_DELAY_MS: '200',
      // Messages held by a killed loader come again after this.
      WAREHOUSE_ACK_WAIT_MS: '3000',
      ...env,
    },
  });
}

/**
 * Read-only SQL against the warehouse the loader writes: the ClickHouse server when CLICKHOUSE_URL is
 * set, else the loader's query endpoint (chDB belongs to the loader process).
 */
export async function sql(dataDir: string, statement: string): Promise<QueryResultTable> {
  const url = process.env['CLICKHOUSE_URL'];
  if (url) {
    const client = createClient({ url });
    try {
      const result = await client.query({ query: statement, format: 'JSONCompact' });
      const body = (await result.json()) as unknown as { meta: Array<{ name: string; type: string }>; data: unknown[][] };
      return { columns: body.meta, rows: body.data, truncated: false, elapsedMs: 0 };
    } finally {
      await client.close();
    }
  }
  const endpoint = readQueryEndpointFile(dataDir);
  if (!endpoint) throw new Error(`no running loader on ${dataDir}`);
  return queryThroughEndpoint(endpoint, statement);
}

/** The rows of a query as objects with numbers where ClickHouse quoted 64-bit integers. */
export async function rowsOf(dataDir: string, statement: string): Promise<Array<Record<string, unknown>>> {
  const table = await sql(dataDir, statement);
  return table.rows.map((row) =>
    Object.fromEntries(
      table.columns.map((column, index) => {
        const value = row[index];
        return [column.name, /Int|Float/.test(column.type) && typeof value === 'string' ? Number(value) : value];
      }),
    ),
  );
}

export async function scalar(dataDir: string, statement: string): Promise<number> {
  const [row] = (await sql(dataDir, statement)).rows;
  return Number(row?.[0]);
}

/** Waits until the loader's durable consumer on `stream` has nothing pending and nothing unacknowledged. */
export async function waitUntilDrained(jsm: JetStreamManager, stream: string, durable: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      const info = await jsm.consumers.info(stream, durable).catch(() => undefined);
      return info !== undefined && info.num_pending === 0 && info.num_ack_pending === 0;
    },
    { timeoutMs, intervalMs: 100, description: `consumer ${durable} on ${stream} drained` },
  );
}

export { Streams };
