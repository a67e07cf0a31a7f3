// Every ClickHouse query of the dashboards runs against the real warehouse schema: the migrations of
// libs/warehouse applied to the test harness's warehouse (embedded chDB here; a server with
// CLICKHOUSE_URL or Docker), Grafana's macros replaced as the ClickHouse plugin would. This catches wrong
// columns, types and functions, not only unknown tables.
import { createWarehouse, type WarehouseHandle } from '@tollstream/testing';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { workspaceRoot } from './helm';

const dashboardsDir = join(workspaceRoot, 'deploy', 'grafana', 'dashboards');
const database = `deploy_checks_${process.pid}`;

interface Query {
  dashboard: string;
  where: string;
  sql: string;
}
const queries: Query[] = readdirSync(dashboardsDir)
  .filter((file) => file.endsWith('.json'))
  .flatMap((file) => {
    const dashboard = JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8')) as {
      panels: Array<{ title: string; targets?: Array<{ rawSql?: string }> }>;
      templating: { list: Array<{ name: string; datasource: { uid: string }; query: string }> };
    };
    return [
      ...dashboard.panels.flatMap((panel) => (panel.targets ?? []).filter((t) => t.rawSql).map((t) => ({ dashboard: file, where: panel.title, sql: t.rawSql as string }))),
      ...dashboard.templating.list.filter((v) => v.datasource.uid === 'tollstream-clickhouse').map((v) => ({ dashboard: file, where: `variable ${v.name}`, sql: v.query })),
    ];
  });

/** What the Grafana ClickHouse plugin sends for the macros and variables the dashboards use. */
function expandMacros(sql: string): string {
  const expanded = sql
    .replace(/\$__timeFilter\((\w+)\)/g, '$1 >= toDateTime(now() - INTERVAL 1 DAY) AND $1 <= toDateTime(now())')
    .replace(/\$\{station:singlequote\}/g, "'st-001','st-002'")
    .replace(/\btolls\./g, `${database}.`);
  if (/\$\{|\$__/.test(expanded)) throw new Error(`a macro or variable this test does not know: ${sql}`);
  return expanded;
}

let warehouse: WarehouseHandle;
beforeAll(async () => {
  warehouse = await createWarehouse();
  // Loaded by path at run time: the check needs the warehouse's real migrations without this tools
  // project depending on the warehouse domain library.
  const migrate = (await import(join(workspaceRoot, 'libs', 'warehouse', 'src', 'lib', 'migrate.ts'))) as {
    applyMigrations(client: WarehouseHandle['client'], database: string): Promise<unknown>;
  };
  await migrate.applyMigrations(warehouse.client, database);
}, 120_000);
afterAll(async () => {
  await warehouse?.client.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => undefined);
  await warehouse?.close();
});

it('finds the dashboards’ ClickHouse queries', () => {
  expect(queries.length).toBeGreaterThan(5);
});

it.each(queries.map((query) => [`${query.dashboard}: ${query.where}`, query] as const))('%s runs against the warehouse schema', async (_name, query) => {
  const result = await warehouse.client.query({ query: expandMacros(query.sql), format: 'JSONEachRow' });
  expect(Array.isArray(await result.json())).toBe(true);
});
