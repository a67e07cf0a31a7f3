// Grafana (deploy/grafana): the dashboards parse, use only the provisioned datasources, and refer only to
// ClickHouse tables and views the warehouse migrations create (libs/warehouse/src/lib/schema.ts) and to
// Prometheus metrics the services register (name: 'tollstream_...' in apps/ and libs/, plus prom-client's
// default process and Node.js metrics).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { parse } from 'yaml';
import { workspaceRoot } from './helm';

const grafanaDir = join(workspaceRoot, 'deploy', 'grafana');
const dashboardFiles = readdirSync(join(grafanaDir, 'dashboards')).filter((file) => file.endsWith('.json'));

interface Target {
  refId: string;
  datasource: { type: string; uid: string };
  rawSql?: string;
  expr?: string;
}
interface Panel {
  id: number;
  title: string;
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; datasource: { uid: string }; query: string }> };
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts'))
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((path) => !path.includes('node_modules') && !path.includes('__fixtures__'));
}

/** Tables and views created by the warehouse migrations. */
function warehouseRelations(): Set<string> {
  const schema = readFileSync(join(workspaceRoot, 'libs', 'warehouse', 'src', 'lib', 'schema.ts'), 'utf8');
  return new Set([...schema.matchAll(/CREATE\s+(?:TABLE\s+IF\s+NOT\s+EXISTS|OR\s+REPLACE\s+VIEW|VIEW|MATERIALIZED\s+VIEW(?:\s+IF\s+NOT\s+EXISTS)?)\s+\{db\}\.(\w+)/g)].map((match) => match[1]));
}

/** Metric names registered by the services, and prom-client's default metrics. */
function knownMetrics(): Set<string> {
  const names = new Set<string>();
  for (const root of ['apps', 'libs']) {
    for (const file of sourceFiles(join(workspaceRoot, root))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/name:\s*['"`](tollstream_[a-z0-9_]+)['"`]/g)) names.add(match[1]);
    }
  }
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const metric of registry.getMetricsAsArray()) names.add(metric.name);
  return names;
}

const dashboards: Array<[string, Dashboard]> = dashboardFiles.map((file) => [file, JSON.parse(readFileSync(join(grafanaDir, 'dashboards', file), 'utf8')) as Dashboard]);

it('has the analysts and operators dashboards', () => {
  expect(dashboardFiles.sort()).toEqual(['analysts.json', 'operators.json']);
});

it('provisions the datasources and dashboards the dashboards use', () => {
  const provisioning = parse(readFileSync(join(grafanaDir, 'provisioning', 'datasources', 'tollstream.yaml'), 'utf8')) as {
    datasources: Array<{ uid: string; type: string }>;
  };
  const datasources = new Map(provisioning.datasources.map((source) => [source.uid, source.type]));
  expect(datasources.get('tollstream-clickhouse')).toBe('grafana-clickhouse-datasource');
  for (const [, dashboard] of dashboards) {
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) expect({ panel: panel.title, type: datasources.get(target.datasource.uid) }).toEqual({ panel: panel.title, type: target.datasource.type });
    }
    for (const variable of dashboard.templating.list) expect(datasources.has(variable.datasource.uid)).toBe(true);
  }
  const providers = parse(readFileSync(join(grafanaDir, 'provisioning', 'dashboards', 'tollstream.yaml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
  expect(providers.providers[0].options.path).toBe('/var/lib/grafana/dashboards');
});

describe.each(dashboards)('%s', (_file, dashboard) => {
  const targets = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, ...target })));
  const sql = [
    ...targets.filter((target) => target.rawSql).map((target) => ({ where: target.panel, text: target.rawSql as string })),
    ...dashboard.templating.list.filter((v) => v.datasource.uid === 'tollstream-clickhouse').map((v) => ({ where: `variable ${v.name}`, text: v.query })),
  ];
  const promql = [
    ...targets.filter((target) => target.expr).map((target) => ({ where: target.panel, text: target.expr as string })),
    ...dashboard.templating.list.filter((v) => v.datasource.uid === 'tollstream-prometheus').map((v) => ({ where: `variable ${v.name}`, text: v.query })),
  ];

  it('has a uid, unique panel ids and a query in every panel', () => {
    expect(dashboard.uid).toMatch(/^tollstream-/);
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) expect((panel.targets ?? []).length).toBeGreaterThan(0);
  });

  it('reads only tables and views of database tolls that the migrations create', () => {
    const relations = warehouseRelations();
    expect(relations.has('traffic_per_station_slot')).toBe(true);
    const unknown: string[] = [];
    for (const query of sql) {
      for (const match of query.text.matchAll(/\b(?:FROM|JOIN)\s+([\w.`"]+)/gi)) {
        const [database, relation] = match[1].replace(/[`"]/g, '').split('.');
        if (database !== 'tolls' || !relation || !relations.has(relation)) unknown.push(`${query.where}: ${match[1]}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('uses only metrics the services register', () => {
    const metrics = knownMetrics();
    const unknown: string[] = [];
    for (const query of promql) {
      const names = [...query.text.matchAll(/\b((?:tollstream|process|nodejs)_[a-z0-9_]+)\b/g)].map((match) => match[1]);
      for (const name of names) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        if (!metrics.has(name) && !metrics.has(base)) unknown.push(`${query.where}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
  });
});
