import type { ClickHouseClient } from '@clickhouse/client';
import { assertDatabaseName, assertMigrationsOrdered, migrations as allMigrations, statementsFor, type Migration } from './schema';

export interface MigrationReport {
  database: string;
  /** Versions applied by this call, in order. */
  applied: number[];
  /** The schema version after this call (the highest version recorded). */
  currentVersion: number;
  /** The merge settings set on the loaded tables (those the engine knows; see MERGE_POLICY); empty with the engine's defaults. */
  mergePolicy: Record<string, number>;
}

/**
 * Fewer, wider background merges than the engine's default (ADR 0007, amendment 4). The loader
 * inserts a part per table about every half second; with the default selector every row was
 * rewritten several times, as much CPU as the inserts themselves (chDB 26.7, 1.5 M transactions in
 * parts of 12,500 rows: 3.9 s of CPU with no merges, 6.9-8.8 s by default, 5.1-5.4 s with these).
 * Active parts stay few (12 in that test; about base x levels in general), so FINAL reads barely change.
 * Only settings the engine knows are set: older servers (24.8) keep their default.
 */
export const MERGE_POLICY: Readonly<Record<string, number>> = {
  merge_selector_base: 20,
  merge_selector_enable_heuristic_to_lower_max_parts_to_merge_at_once: 0,
};

/** The tables the loader inserts into. */
const LOADED_TABLES = ['transactions', 'spend_windows', 'traffic_windows', 'alerts'] as const;

/** `wide`: MERGE_POLICY; `engine`: the engine's own defaults (the settings reset). */
export type MergePolicyChoice = 'wide' | 'engine';

async function applyMergePolicy(client: ClickHouseClient, db: string, choice: MergePolicyChoice): Promise<Record<string, number>> {
  const result = await client.query({
    query: 'SELECT name FROM system.merge_tree_settings WHERE name IN ({names:Array(String)})',
    query_params: { names: Object.keys(MERGE_POLICY) },
    format: 'JSONEachRow',
  });
  const known = new Set((await result.json<{ name: string }>()).map((row) => row.name));
  const policy = Object.fromEntries(Object.entries(MERGE_POLICY).filter(([name]) => known.has(name)));
  if (Object.keys(policy).length === 0) return policy;
  const change =
    choice === 'wide'
      ? `MODIFY SETTING ${Object.entries(policy)
          .map(([name, value]) => `${name} = ${value}`)
          .join(', ')}`
      : `RESET SETTING ${Object.keys(policy).join(', ')}`;
  for (const table of LOADED_TABLES) await client.command({ query: `ALTER TABLE ${db}.${table} ${change}` });
  return choice === 'wide' ? policy : {};
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
  mergePolicyChoice: MergePolicyChoice = 'wide',
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
  // Tables of the full schema only (a test may apply a part of it).
  const mergePolicy = migrations === allMigrations ? await applyMergePolicy(client, db, mergePolicyChoice) : {};
  return { database, applied, currentVersion: all.size === 0 ? 0 : Math.max(...all), mergePolicy };
}
