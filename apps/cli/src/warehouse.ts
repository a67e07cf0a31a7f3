import type { ClientTlsOptions } from '@tollstream/service-kit';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  applyMigrations,
  formatResult,
  openWarehouse,
  queryThroughEndpoint,
  readQueryEndpointFile,
  redactUrl,
  runReadOnlyQuery,
  type QueryResultTable,
  type ResultFormat,
} from '@tollstream/warehouse';

export interface WarehouseCommandOptions {
  clickhouseUrl?: string;
  dataDir: string;
}

export interface SqlCommandOptions extends WarehouseCommandOptions {
  format: ResultFormat;
  maxRows: number;
  /** TLS to the loader's query endpoint when its ops port serves HTTPS (ADR 0017). */
  endpointTls?: ClientTlsOptions;
}

export interface MigrateCommandOptions extends WarehouseCommandOptions {
  database: string;
}

/** A problem the operator can fix; printed without a stack trace. */
export class WarehouseCommandError extends Error {}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs one read-only statement against the configured warehouse: the ClickHouse server (CLICKHOUSE_URL),
 * else the query endpoint of the loader that owns the embedded warehouse (found through the data
 * directory), else the embedded warehouse opened directly when no loader runs.
 */
export async function runSql(sql: string, options: SqlCommandOptions, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<void> {
  let result: QueryResultTable;
  let source: string;
  if (options.clickhouseUrl) {
    source = `ClickHouse at ${redactUrl(options.clickhouseUrl)}`;
    result = await withWarehouse(options, (client) => runReadOnlyQuery(client, sql, options.maxRows, true));
  } else {
    const endpoint = readQueryEndpointFile(options.dataDir);
    if (endpoint) {
      source = `warehouse-loader (pid ${endpoint.pid}) at ${endpoint.url}`;
      try {
        result = await queryThroughEndpoint(endpoint, sql, options.endpointTls);
      } catch (error) {
        throw new WarehouseCommandError(errorText(error));
      }
    } else {
      assertWarehouseExists(options.dataDir);
      source = `embedded warehouse at ${resolve(options.dataDir)}`;
      result = await withWarehouse(options, (client) => runReadOnlyQuery(client, sql, options.maxRows, true));
    }
  }
  stdout.write(formatResult(result, options.format));
  if (options.format === 'table') stderr.write(`(${source}, ${result.elapsedMs} ms)\n`);
}

/** Applies the warehouse migrations to the configured warehouse (idempotent). */
export async function runMigrate(options: MigrateCommandOptions, stdout: NodeJS.WritableStream): Promise<void> {
  if (!options.clickhouseUrl) {
    const endpoint = readQueryEndpointFile(options.dataDir);
    if (endpoint) {
      throw new WarehouseCommandError(
        `a warehouse-loader (pid ${endpoint.pid}) owns ${resolve(options.dataDir)}: it applied the migrations at start-up; ` +
          'stop it to migrate the embedded warehouse by hand',
      );
    }
  }
  const report = await withWarehouse(options, (client) => applyMigrations(client, options.database));
  stdout.write(
    report.applied.length === 0
      ? `database ${report.database}: schema already at version ${report.currentVersion}\n`
      : `database ${report.database}: applied migration(s) ${report.applied.join(', ')}; schema version ${report.currentVersion}\n`,
  );
}

function assertWarehouseExists(dataDir: string): void {
  if (!existsSync(dataDir)) {
    throw new WarehouseCommandError(
      `no warehouse at ${resolve(dataDir)}: start the warehouse-loader (it creates it), pass --data-dir, or set CLICKHOUSE_URL`,
    );
  }
}

async function withWarehouse<T>(
  options: WarehouseCommandOptions,
  action: (client: Awaited<ReturnType<typeof openWarehouse>>['client']) => Promise<T>,
): Promise<T> {
  let warehouse: Awaited<ReturnType<typeof openWarehouse>>;
  try {
    warehouse = await openWarehouse({ clickhouseUrl: options.clickhouseUrl, dataDir: options.dataDir });
  } catch (error) {
    throw new WarehouseCommandError(errorText(error));
  }
  try {
    return await action(warehouse.client);
  } catch (error) {
    throw new WarehouseCommandError(errorText(error));
  } finally {
    await warehouse.close().catch(() => undefined);
  }
}
