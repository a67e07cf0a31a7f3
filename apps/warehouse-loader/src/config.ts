import { brokerConfigShape } from '@tollstream/messaging';
import { booleanFromEnv, durationMsSchema, portSchema, tlsConfigShape } from '@tollstream/service-kit';
import { z } from 'zod';

/** Every environment variable the warehouse loader reads. The Helm chart sets exactly these. */
export const warehouseLoaderConfigSchema = z.object({
  ...brokerConfigShape,
  /** In-process TLS (ADR 0017); unset: plaintext. */
  ...tlsConfigShape,
  /** A ClickHouse server (http(s)://user:password@host:8123); when unset, the embedded engine (chDB) is used. */
  CLICKHOUSE_URL: z.string().url().optional(),
  /** Data directory of the embedded warehouse (ignored with CLICKHOUSE_URL). Owned by this process. */
  WAREHOUSE_DATA_DIR: z.string().min(1).default('.tollstream/warehouse'),
  WAREHOUSE_DATABASE: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'letters, digits and _ only').default('tolls'),
  /**
   * Insert when this many rows are waiting (per stream). 50,000 keeps the embedded engine's loader
   * near 600 MiB RSS at full speed (bench: 200,000 gave 755-786 MiB for no measurably higher
   * throughput; ADR 0007); a ClickHouse server prefers larger inserts (the chart sets 200,000).
   */
  WAREHOUSE_BATCH_MAX_ROWS: z.coerce.number().int().min(1).max(1_000_000).default(50_000),
  /** Insert when the oldest waiting row has waited this long. */
  WAREHOUSE_BATCH_MAX_DELAY_MS: durationMsSchema.default(500),
  /** Insert when this many stream messages are waiting (bounds unacknowledged messages). */
  WAREHOUSE_BATCH_MAX_MESSAGES: z.coerce.number().int().min(1).max(40_000).default(5_000),
  /**
   * Background merges of the loaded tables: `wide` (fewer, wider merges: a third of the default's merge
   * CPU, a few more parts; ADR 0007 amendment 4) or `engine` (the engine's own defaults, settings reset).
   */
  WAREHOUSE_MERGE_POLICY: z.enum(['wide', 'engine']).default('wide'),
  /** Messages pulled ahead of processing, per stream (memory bound with the batch size). */
  WAREHOUSE_FETCH_AHEAD_MESSAGES: z.coerce.number().int().min(1).max(10_000).default(800),
  /** JetStream ack wait of the loader's consumers: after a crash, unacknowledged messages come again after this. */
  WAREHOUSE_ACK_WAIT_MS: durationMsSchema.default(30_000),
  WAREHOUSE_CONSUMER_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,48}$/).default('warehouse-loader'),
  /** Serve POST /query (read-only SQL, bearer token) on the HTTP port, for `tollstream sql` while the loader owns chDB. */
  WAREHOUSE_QUERY_ENDPOINT: booleanFromEnv.default(true),
  /** Bearer token of the query endpoint; when unset a random one is written to <WAREHOUSE_DATA_DIR>/query-endpoint.json. */
  WAREHOUSE_QUERY_TOKEN: z.string().min(16).optional(),
  WAREHOUSE_HTTP_HOST: z.string().default('127.0.0.1'),
  WAREHOUSE_HTTP_PORT: portSchema.default(9466),
  SHUTDOWN_GRACE_MS: durationMsSchema.default(20_000),
  LOG_LEVEL: z.string().default('info'),
  /**
   * Test hook only (crash tests): SIGKILL this process after the first confirmed insert of
   * transactions, before its messages are acknowledged. Never set in production.
   */
  WAREHOUSE_LOADER_CRASH_AFTER_INSERT: booleanFromEnv.default(false),
});

export type WarehouseLoaderConfig = z.infer<typeof warehouseLoaderConfigSchema>;
