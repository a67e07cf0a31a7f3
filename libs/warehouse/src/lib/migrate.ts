import type { ClickHouseClient } from '@clickhouse/client';
import { assertDatabaseName, assertMigrationsOrdered, migrations as allMigrations, statementsFor, type Migration } from './schema';

export interface MigrationReport {
  database: string;
  /** Versions applied by this call, in order. */
  applied: number[];
  /** The schema version after this call (the highest version recorded). */
  currentVersion: number;
}

async function appliedVersions(client: ClickHouseClient, db: string): Promise<Set<number>> {
  const result = await client.query({ query: `SELECT DISTINCT version FROM ${db}.schema_migrations`, format: 'JSONEachRow' });
  const rows = await result.json<{ version: number | string }>();
  return new Set(rows.map((row) => Number(row.version)));
}

/**
 * Brings `database` to the newest schema: creates the database and the `schema_migrations` ledger,
 * then runs every migration not yet recorded, in version order, and records it. Idempotent, and safe
 * when several loaders start at once (every statement is IF NOT EXISTS / OR REPLACE, the ledger is a
 * ReplacingMergeTree keyed by version).
 */
export async function applyMigrations(
  client: ClickHouseClient,
  database: string,
  migrations: readonly Migration[] = allMigrations,
): Promise<MigrationReport> {
  assertMigrationsOrdered(migrations);
  const db = `\`${assertDatabaseName(database)}\``;
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (
      version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version`,
  });
  const done = await appliedVersions(client, db);
  const applied: number[] = [];
  for (const migration of migrations) {
    if (done.has(migration.version)) continue;
    for (const statement of statementsFor(migration, database)) await client.command({ query: statement });
    await client.command({
      query: `INSERT INTO ${db}.schema_migrations (version, name) VALUES ({version:UInt32}, {name:String})`,
      query_params: { version: migration.version, name: migration.name },
    });
    applied.push(migration.version);
  }
  const all = new Set([...done, ...applied]);
  return { database, applied, currentVersion: all.size === 0 ? 0 : Math.max(...all) };
}
