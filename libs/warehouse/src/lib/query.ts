import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { httpsRequestText, type ClientTlsOptions } from '@tollstream/service-kit';
import { loadChdbConnection } from './connection';
import { readOnlyStatement, StatementNotAllowedError } from './sql-guard';

export interface QueryColumn {
  name: string;
  type: string;
}

export interface QueryResultTable {
  columns: QueryColumn[];
  rows: unknown[][];
  /** More rows existed than the limit; only the first `rows.length` are here. */
  truncated: boolean;
  elapsedMs: number;
}

/** Largest result the read-only endpoint returns. */
export const DEFAULT_MAX_RESULT_ROWS = 10_000;

/**
 * Runs one read-only statement and returns it as a table of at most `maxRows` rows.
 * The statement is checked by readOnlyStatement first (throws StatementNotAllowedError).
 */
export async function runReadOnlyQuery(
  client: ClickHouseClient,
  sql: string,
  maxRows = DEFAULT_MAX_RESULT_ROWS,
  /** Also ask the engine for readonly = 1 (not for a client whose session is already read-only). */
  enforceReadonly = false,
): Promise<QueryResultTable> {
  const statement = readOnlyStatement(sql);
  const started = performance.now();
  const result = await client.query({
    query: statement,
    format: 'JSONCompact',
    clickhouse_settings: enforceReadonly ? { readonly: '1' } : undefined,
  });
  const body = await result.json<unknown[]>();
  const table = body as unknown as { meta?: QueryColumn[]; data?: unknown[][] };
  const rows = table.data ?? [];
  return {
    columns: (table.meta ?? []).map(({ name, type }) => ({ name, type })),
    rows: rows.length > maxRows ? rows.slice(0, maxRows) : rows,
    truncated: rows.length > maxRows,
    elapsedMs: Math.round(performance.now() - started),
  };
}

/**
 * A client for the read-only endpoint of a loader that owns an embedded warehouse: its own chDB
 * session on the same data directory (settings are per session), limited to reading, with a result
 * and time bound.
 */
export async function openReadOnlyEmbeddedClient(dataDir: string, maxRows = DEFAULT_MAX_RESULT_ROWS): Promise<ClickHouseClient> {
  const { createChdbConnection } = await loadChdbConnection();
  const client = createClient({ connection: createChdbConnection({ path: resolve(dataDir) }) });
  for (const statement of [
    `SET max_result_rows = ${maxRows + 1}`,
    "SET result_overflow_mode = 'break'",
    'SET max_execution_time = 60',
    'SET readonly = 1',
  ]) {
    await client.command({ query: statement });
  }
  return client;
}

/** Where a running loader tells the command line how to reach its query endpoint. */
export interface QueryEndpointInfo {
  url: string;
  token: string;
  pid: number;
  database: string;
}

const ENDPOINT_FILE = 'query-endpoint.json';

export function newQueryToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Written (mode 0600) by the loader into its data directory; removed when it stops. */
export function writeQueryEndpointFile(dataDir: string, info: QueryEndpointInfo): string {
  const path = join(resolve(dataDir), ENDPOINT_FILE);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(info), { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
  return path;
}

export function removeQueryEndpointFile(dataDir: string): void {
  rmSync(join(resolve(dataDir), ENDPOINT_FILE), { force: true });
}

/** The endpoint of a loader running on this data directory, or undefined (no file, or its process is gone). */
export function readQueryEndpointFile(dataDir: string): QueryEndpointInfo | undefined {
  let info: QueryEndpointInfo;
  try {
    info = JSON.parse(readFileSync(join(resolve(dataDir), ENDPOINT_FILE), 'utf8')) as QueryEndpointInfo;
  } catch {
    return undefined;
  }
  try {
    process.kill(info.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
  }
  return info;
}

function tokensEqual(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

function sendJson(response: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  response.end(text);
}

const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * POST /query {"sql": "..."} with `Authorization: Bearer <token>` → QueryResultTable as JSON.
 * 401 without the token, 400 for a statement that is not read-only, 422 when the warehouse refuses it.
 */
export function createQueryHandler(options: {
  client: ClickHouseClient;
  token: string;
  maxRows?: number;
}): (request: IncomingMessage, response: ServerResponse) => Promise<void> {
  return async (request, response) => {
    if (request.method !== 'POST') {
      sendJson(response, 405, { error: 'use POST with {"sql": "..."}' });
      return;
    }
    const given = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
    if (!tokensEqual(options.token, given)) {
      sendJson(response, 401, { error: 'a valid bearer token is required' });
      return;
    }
    let raw = '';
    for await (const chunk of request) {
      raw += String(chunk);
      if (raw.length > MAX_REQUEST_BYTES) {
        sendJson(response, 413, { error: 'request too large' });
        return;
      }
    }
    let sql: unknown;
    try {
      sql = (JSON.parse(raw) as { sql?: unknown }).sql;
    } catch {
      sendJson(response, 400, { error: 'expected a JSON body {"sql": "..."}' });
      return;
    }
    if (typeof sql !== 'string') {
      sendJson(response, 400, { error: 'expected a JSON body {"sql": "..."}' });
      return;
    }
    try {
      sendJson(response, 200, await runReadOnlyQuery(options.client, sql, options.maxRows));
    } catch (error) {
      if (error instanceof StatementNotAllowedError) sendJson(response, 400, { error: error.message });
      else sendJson(response, 422, { error: error instanceof Error ? error.message : String(error) });
    }
  };
}

/**
 * Client side of the endpoint, for the command line. An https endpoint (the loader's ops port with TLS,
 * ADR 0017) is reached with `tls` (the CA that signed the loader's certificate).
 */
export async function queryThroughEndpoint(info: Pick<QueryEndpointInfo, 'url' | 'token'>, sql: string, tls?: ClientTlsOptions): Promise<QueryResultTable> {
  const url = new URL('/query', info.url);
  const request = { method: 'POST', headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ sql }) };
  let status: number;
  let text: string;
  if (url.protocol === 'https:' && tls) {
    ({ status, text } = await httpsRequestText(url.href, request, tls, QUERY_CLIENT_TIMEOUT_MS));
  } else {
    const response = await fetch(url, { ...request, signal: AbortSignal.timeout(QUERY_CLIENT_TIMEOUT_MS) });
    status = response.status;
    text = await response.text();
  }
  let body: QueryResultTable & { error?: string };
  try {
    body = JSON.parse(text) as QueryResultTable & { error?: string };
  } catch {
    throw new Error(`query endpoint answered HTTP ${status} without JSON`);
  }
  if (status < 200 || status > 299) throw new Error(body.error ?? `query endpoint answered HTTP ${status}`);
  return body;
}

/** Longer than any statement the endpoint lets run. */
const QUERY_CLIENT_TIMEOUT_MS = 120_000;
