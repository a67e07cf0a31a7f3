import type { ClickHouseClient } from '@clickhouse/client';
import { Readable } from 'node:stream';
import { assertDatabaseName } from './schema';

const TOKEN = /^[A-Za-z0-9:._-]{1,256}$/;

/** Text formats the loader writes: TabSeparated for the raw transactions (cheapest), JSON rows elsewhere. */
export type InsertFormat = 'JSONCompactEachRow' | 'TabSeparated';

/** The per-insert settings, as a SETTINGS clause of the INSERT itself (see insertLines). */
export type InsertSettings = Record<string, string | number>;

/**
 * An engine-specific insert that takes the body as bytes: chDB's raw passthrough insert
 * (`connection.chdb.rawInsert`), which hands the Buffer to the engine without converting it to a
 * JavaScript string and back, and puts `settings` in the INSERT's own SETTINGS clause.
 * `openWarehouse` provides it for the embedded engine; a ClickHouse server goes through `client.exec`.
 */
export type RawBodyInserter = (request: {
  /** `database.table`. */
  table: string;
  columns: readonly string[];
  body: Buffer;
  format: InsertFormat;
  settings: InsertSettings;
}) => Promise<void>;

/**
 * One insert body from parts in order: when they already lie side by side in one ArrayBuffer (the
 * loader writes a batch's rows into one buffer, transaction-tsv.ts), a view spanning them, no copy;
 * otherwise a copy (`Buffer.concat`). Either way the bytes are the parts' bytes in order.
 */
export function joinBodies(parts: readonly Buffer[]): Buffer {
  const [first] = parts;
  if (first === undefined) return Buffer.alloc(0);
  if (parts.length === 1) return first;
  let total = 0;
  let adjacent = true;
  for (const part of parts) {
    if (part.buffer !== first.buffer || part.byteOffset !== first.byteOffset + total) adjacent = false;
    total += part.length;
  }
  return adjacent ? Buffer.from(first.buffer, first.byteOffset, total) : Buffer.concat(parts, total);
}

/** An insert the engine refused or failed, with ClickHouse's error type (e.g. CANNOT_PARSE_TEXT) when known. */
export class WarehouseInsertError extends Error {
  readonly type?: string;
  readonly code?: string;
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'WarehouseInsertError';
    const match = /(?:Code|Error): (\d+).*Exception: .+\(((?=.+[A-Z]{3})[A-Z0-9_]+?)\)/s.exec(message);
    if (match) {
      this.code = match[1];
      this.type = match[2];
    }
  }
}

/**
 * Inserts lines (JSONCompactEachRow or TabSeparated) with a deduplication token; resolves once the engine confirmed.
 *
 * The settings are a SETTINGS clause of the INSERT itself, not `clickhouse_settings`: on chDB the
 * latter become `SET` statements that stay in the session, so a later insert without its own token
 * would silently be deduplicated against the previous one (measured). `async_insert = 0`: chDB enables
 * asynchronous inserts by default; the loader wants "confirmed = stored". `optimize_on_insert = 0`: no
 * ReplacingMergeTree collapsing inside each inserted block (about 25 % faster inserts, measured); the
 * views read with FINAL, so duplicates are never visible either way.
 */
export async function insertLines(
  client: ClickHouseClient,
  database: string,
  table: string,
  columns: readonly string[],
  lines: readonly string[],
  deduplicationToken: string,
  format: InsertFormat = 'JSONCompactEachRow',
  raw?: RawBodyInserter,
): Promise<void> {
  if (lines.length === 0) return;
  await insertBody(client, database, table, columns, lines.join('\n'), deduplicationToken, format, raw);
}

/**
 * As insertLines, with the body already in the format (lines separated by '\n'; a Buffer is sent as
 * is). With `raw` (the embedded engine), a Buffer body goes to the engine as bytes.
 */
export async function insertBody(
  client: ClickHouseClient,
  database: string,
  table: string,
  columns: readonly string[],
  body: Buffer | string,
  deduplicationToken: string,
  format: InsertFormat,
  raw?: RawBodyInserter,
): Promise<void> {
  if (body.length === 0) return;
  if (!TOKEN.test(deduplicationToken)) throw new Error(`invalid deduplication token "${deduplicationToken}"`);
  const qualified = `\`${assertDatabaseName(database)}\`.\`${table}\``;
  if (raw) {
    const settings: InsertSettings = {
      insert_deduplicate: 1,
      insert_deduplication_token: deduplicationToken,
      async_insert: 0,
      optimize_on_insert: 0,
    };
    try {
      await raw({ table: `${database}.${table}`, columns, body: typeof body === 'string' ? Buffer.from(body) : body, format, settings });
    } catch (error) {
      throw new WarehouseInsertError(error instanceof Error ? error.message : String(error), { cause: error });
    }
    return;
  }
  const query =
    `INSERT INTO ${qualified} (${columns.join(', ')}) ` +
    `SETTINGS insert_deduplicate = 1, insert_deduplication_token = '${deduplicationToken}', async_insert = 0, optimize_on_insert = 0 ` +
    `FORMAT ${format}`;
  const result = await client.exec({ query, values: Readable.from([body]) });
  // The HTTP response must be read to free the socket; on chDB it is an empty buffer.
  for await (const _chunk of result.stream) {
    // nothing to read
  }
}
