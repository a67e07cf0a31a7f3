import { createClient, type ClickHouseClient, type ClickHouseClientConfigOptions } from '@clickhouse/client';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RawBodyInserter } from './insert';

export type WarehouseKind = 'server' | 'embedded';

export interface WarehouseConnection {
  readonly client: ClickHouseClient;
  readonly kind: WarehouseKind;
  /** Where it points, without credentials (for logs). */
  readonly describe: string;
  /**
   * Embedded engine only: inserts a body as bytes (chDB's raw passthrough insert), for insertBody /
   * insertLines and the loader; undefined for a server (the client sends the body over HTTP).
   */
  readonly rawInsert?: RawBodyInserter;
  close(): Promise<void>;
}

export interface OpenWarehouseOptions {
  /** A ClickHouse server's HTTP(S) URL (may carry user:password); when set, the server is used. */
  clickhouseUrl?: string;
  /** Data directory of the embedded engine (chDB) when no URL is given. */
  dataDir: string;
  /** Extra @clickhouse/client options (server only), e.g. request_timeout. */
  clientOptions?: Partial<ClickHouseClientConfigOptions>;
}

/** The pluggable connection slot of `createClient({ connection })`. */
type ClientConnection = NonNullable<ClickHouseClientConfigOptions['connection']>;

/** The part of chdb's `connection.chdb.rawInsert` used here (chdb 3.4). */
interface ChdbRawInsert {
  rawInsert(params: {
    table: string;
    values: Buffer;
    format: string;
    columns?: readonly string[];
    settings?: Record<string, string | number | boolean>;
  }): Promise<unknown>;
}

interface ChdbConnectionModule {
  createChdbConnection(options: { path: string }): ClientConnection & { chdb?: ChdbRawInsert };
}

/**
 * Loaded by a computed specifier on purpose (see libs/testing/src/lib/warehouse.ts): chdb 3.4 types
 * its connection against @clickhouse/client-common 1.23.0 while @clickhouse/client 1.23.1 inlines its
 * own copy, so the two Connection types do not unify although the runtime contract is the same.
 */
const CHDB_CONNECTION_MODULE = 'chdb/connection';

export async function loadChdbConnection(): Promise<ChdbConnectionModule> {
  return (await import(CHDB_CONNECTION_MODULE)) as ChdbConnectionModule;
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable URL>';
  }
}

/**
 * The warehouse behind the official @clickhouse/client: a ClickHouse server over HTTP when a URL is
 * given, else the embedded engine (chDB through `chdb/connection`) on `dataDir`. chDB binds one data
 * directory per process, and a directory is used by one process at a time.
 */
export async function openWarehouse(options: OpenWarehouseOptions): Promise<WarehouseConnection> {
  if (options.clickhouseUrl) {
    const client = createClient({ url: options.clickhouseUrl, ...options.clientOptions });
    return { client, kind: 'server', describe: `ClickHouse at ${redactUrl(options.clickhouseUrl)}`, close: () => client.close() };
  }
  const path = resolve(options.dataDir);
  mkdirSync(path, { recursive: true });
  const { createChdbConnection } = await loadChdbConnection();
  let connection: ClientConnection & { chdb?: ChdbRawInsert };
  try {
    connection = createChdbConnection({ path });
  } catch (error) {
    throw new Error(`cannot open the embedded warehouse at ${path}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  const client = createClient({ connection });
  const native = connection.chdb;
  const rawInsert: RawBodyInserter | undefined = native
    ? async ({ table, columns, body, format, settings }) => {
        await native.rawInsert({ table, columns, values: body, format, settings });
      }
    : undefined;
  return { client, kind: 'embedded', describe: `embedded chDB at ${path}`, rawInsert, close: () => client.close() };
}
