import { createClient, type ClickHouseClient, type ClickHouseClientConfigOptions } from '@clickhouse/client';
import { dockerAvailable } from './docker';
import { tempDir, type TempDirHandle } from './temp-dir';

export type WarehouseSource = 'env' | 'container' | 'embedded';

export interface WarehouseHandle {
  /** The official @clickhouse/client; same API whichever engine is behind it. */
  readonly client: ClickHouseClient;
  readonly source: WarehouseSource;
  /** Human-readable origin, e.g. for test logs ("embedded chDB 26.7.2.1 at /tmp/…"). */
  readonly describe: string;
  /** Closes the client and releases the engine (container stopped / embedded data dir removed). Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_CLICKHOUSE_IMAGE = 'clickhouse/clickhouse-server:25.8';

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function selectVersion(client: ClickHouseClient): Promise<string> {
  const result = await client.query({ query: 'SELECT version() AS version', format: 'JSONEachRow' });
  const rows = await result.json<{ version: string }>();
  return rows[0]?.version ?? 'unknown version';
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

function once(action: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => {
    running ??= action();
    return running;
  };
}

async function warehouseFromEnv(url: string): Promise<WarehouseHandle> {
  const client = createClient({ url });
  try {
    const version = await selectVersion(client);
    return { client, source: 'env', describe: `ClickHouse ${version} at ${redactUrl(url)} (CLICKHOUSE_URL)`, close: once(() => client.close()) };
  } catch (error) {
    await client.close().catch(() => undefined);
    throw new Error(`CLICKHOUSE_URL=${redactUrl(url)} is set but not usable: ${errorMessage(error)}`, { cause: error });
  }
}

async function warehouseInContainer(): Promise<WarehouseHandle> {
  const { ClickHouseContainer } = await import('@testcontainers/clickhouse');
  const image = process.env['CLICKHOUSE_IMAGE'] ?? DEFAULT_CLICKHOUSE_IMAGE;
  const container = await new ClickHouseContainer(image).start();
  const client = createClient(container.getClientOptions());
  const close = once(async () => {
    await client.close().catch(() => undefined);
    await container.stop();
  });
  try {
    const version = await selectVersion(client);
    return { client, source: 'container', describe: `ClickHouse ${version} in container ${image} at ${container.getHttpUrl()}`, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * chDB allows one data directory per process. Concurrent embedded warehouses therefore share one
 * fresh temp directory (reference-counted; removed when the last handle closes). Use distinct
 * database names per suite; data of a closed-and-reopened warehouse is gone.
 */
interface EmbeddedEngine {
  readonly dir: TempDirHandle;
  handles: number;
}

let embeddedEngine: Promise<EmbeddedEngine> | undefined;
/** The last engine's release (drain + directory removal); a new directory is opened only after it. */
let previousRelease: Promise<void> = Promise.resolve();

async function acquireEmbeddedEngine(): Promise<EmbeddedEngine> {
  embeddedEngine ??= previousRelease.then(() => tempDir('chdb')).then((dir) => ({ dir, handles: 0 }));
  const engine = await embeddedEngine;
  engine.handles += 1;
  return engine;
}

function releaseEmbeddedEngine(engine: EmbeddedEngine): Promise<void> {
  engine.handles -= 1;
  if (engine.handles > 0) return Promise.resolve();
  embeddedEngine = undefined;
  const release = (async (): Promise<void> => {
    // Wait until the engine really let go of the directory before removing it (and before any
    // later warehouse opens another directory: chDB binds one data directory per process).
    const { drainPending } = await import('chdb');
    await drainPending();
    await engine.dir.remove();
  })();
  previousRelease = release.catch(() => undefined);
  return release;
}

/** The pluggable connection slot of `createClient({ connection })`. */
type ClientConnection = NonNullable<ClickHouseClientConfigOptions['connection']>;

/** What the harness uses from `chdb/connection`. */
interface ChdbConnectionModule {
  createChdbConnection(options: { path: string }): ClientConnection;
}

/**
 * `chdb/connection` is loaded by a computed specifier and typed locally, on purpose:
 * - it exists only in chdb's package.json `exports`, which `moduleResolution: "node"` ignores;
 * - under `node16` its real types resolve, but chdb 3.4 declares `ChdbConnection` against
 *   @clickhouse/client-common 1.23.0 while @clickhouse/client 1.23.1 ships its own inlined copy of
 *   those types (`ClickHouseSettings` differs), so the two `Connection` types are not assignable
 *   although the runtime contract is the same (and exercised by warehouse.spec.ts).
 */
const CHDB_CONNECTION_MODULE = 'chdb/connection';

async function loadChdbConnection(): Promise<ChdbConnectionModule> {
  return (await import(CHDB_CONNECTION_MODULE)) as ChdbConnectionModule;
}

async function embeddedWarehouse(): Promise<WarehouseHandle> {
  const { createChdbConnection } = await loadChdbConnection();
  const engine = await acquireEmbeddedEngine();
  let client: ClickHouseClient | undefined;
  try {
    client = createClient({ connection: createChdbConnection({ path: engine.dir.path }) });
    const version = await selectVersion(client);
    const shared = engine.handles > 1 ? `, shared with ${engine.handles - 1} other open handle(s)` : '';
    const opened = client;
    return {
      client: opened,
      source: 'embedded',
      describe: `embedded chDB ${version} (chdb/connection) at ${engine.dir.path}${shared}`,
      close: once(async () => {
        await opened.close();
        await releaseEmbeddedEngine(engine);
      }),
    };
  } catch (error) {
    await client?.close().catch(() => undefined);
    await releaseEmbeddedEngine(engine).catch(() => undefined);
    const hint = /only one active data directory/i.test(errorMessage(error))
      ? ' (another chDB session with a different data directory is still open in this process: close every ' +
        'WarehouseHandle, e.g. in afterAll, before the next test file opens one)'
      : '';
    throw new Error(`could not open the embedded chDB warehouse: ${errorMessage(error)}${hint}`, { cause: error });
  }
}

/**
 * A ClickHouse for a test, always behind the official @clickhouse/client:
 * `CLICKHOUSE_URL` if set, else a @testcontainers/clickhouse container when a Docker engine is
 * reachable, else embedded chDB (`chdb/connection` plugged into `createClient({ connection })`)
 * on a fresh temp data directory.
 */
export async function createWarehouse(): Promise<WarehouseHandle> {
  const fromEnv = process.env['CLICKHOUSE_URL'];
  if (fromEnv) return warehouseFromEnv(fromEnv);
  if (await dockerAvailable()) return warehouseInContainer();
  return embeddedWarehouse();
}
