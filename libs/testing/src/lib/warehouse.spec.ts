import { existsSync } from 'node:fs';
import { dockerConfiguredSync } from './docker';
import { createWarehouse, type WarehouseHandle } from './warehouse';
import { describeIf } from './conditional';

const embedded = !process.env['CLICKHOUSE_URL'] && !dockerConfiguredSync();

async function count(warehouse: WarehouseHandle, table: string): Promise<number> {
  const result = await warehouse.client.query({ query: `SELECT count() AS n FROM ${table}`, format: 'JSONEachRow' });
  const rows = await result.json<{ n: string | number }>();
  return Number(rows[0]?.n);
}

function dataPathOf(warehouse: WarehouseHandle): string {
  const path = / at (\/[^\s,]+)/.exec(warehouse.describe)?.[1];
  if (!path) throw new Error(`no data path in "${warehouse.describe}"`);
  return path;
}

describe('createWarehouse', () => {
  let warehouse: WarehouseHandle;

  beforeAll(async () => {
    warehouse = await createWarehouse();
  });

  afterAll(async () => {
    await warehouse.close();
  });

  it('says where the engine comes from', () => {
    if (embedded) {
      expect(warehouse.source).toBe('embedded');
      expect(warehouse.describe).toMatch(/^embedded chDB \d+\.\d+\S* \(chdb\/connection\) at \/\S+tollstream-chdb-/);
    } else {
      expect(['env', 'container']).toContain(warehouse.source);
    }
  });

  it('answers SELECT version()', async () => {
    const result = await warehouse.client.query({ query: 'SELECT version() AS version', format: 'JSONEachRow' });
    const [row] = await result.json<{ version: string }>();
    expect(row?.version).toMatch(/^\d+\.\d+/);
  });

  it('creates a database and a MergeTree table, takes 1,000 JSONEachRow rows and counts them', async () => {
    await warehouse.client.command({ query: 'CREATE DATABASE IF NOT EXISTS harness_spec' });
    await warehouse.client.command({
      query: `CREATE TABLE harness_spec.toll_tx (
                tx_id String, station_id LowCardinality(String), amount_minor UInt32, occurred_at DateTime64(3, 'UTC')
              ) ENGINE = MergeTree ORDER BY (station_id, occurred_at)`,
    });
    const base = Date.UTC(2025, 0, 1);
    await warehouse.client.insert({
      table: 'harness_spec.toll_tx',
      format: 'JSONEachRow',
      values: Array.from({ length: 1_000 }, (_, index) => ({
        tx_id: `tx-${index}`,
        station_id: `ST-${index % 7}`,
        amount_minor: 150 + index,
        occurred_at: new Date(base + index * 1_000).toISOString().replace('T', ' ').replace('Z', ''),
      })),
    });
    expect(await count(warehouse, 'harness_spec.toll_tx')).toBe(1_000);

    const perStation = await warehouse.client.query({
      query: 'SELECT station_id, count() AS n FROM harness_spec.toll_tx GROUP BY station_id ORDER BY station_id',
      format: 'JSONEachRow',
    });
    const rows = await perStation.json<{ station_id: string; n: string | number }>();
    expect(rows).toHaveLength(7);
    expect(rows.reduce((sum, row) => sum + Number(row.n), 0)).toBe(1_000);
  });

  it('supports query parameters like a server does', async () => {
    const result = await warehouse.client.query({
      query: 'SELECT count() AS n FROM harness_spec.toll_tx WHERE station_id = {station:String}',
      query_params: { station: 'ST-3' },
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ n: string | number }>();
    expect(Number(row?.n)).toBe(143);
  });
});

describeIf(embedded, 'createWarehouse (embedded chDB lifecycle)', 'applies to embedded chDB only (CLICKHOUSE_URL is set or Docker is used)', () => {
  it('shares the one chDB data directory between concurrent handles and removes it after the last close', async () => {
    const [first, second] = await Promise.all([createWarehouse(), createWarehouse()]);
    const path = dataPathOf(first);
    expect(dataPathOf(second)).toBe(path);
    expect(second.describe).toMatch(/shared with 1 other open handle/);

    await first.client.command({ query: 'CREATE DATABASE IF NOT EXISTS shared_spec' });
    await first.client.command({ query: 'CREATE TABLE shared_spec.t (id UInt32) ENGINE = MergeTree ORDER BY id' });
    await first.client.insert({ table: 'shared_spec.t', format: 'JSONEachRow', values: [{ id: 1 }, { id: 2 }] });
    expect(await count(second, 'shared_spec.t')).toBe(2);

    await first.close();
    expect(existsSync(path)).toBe(true);
    expect(await count(second, 'shared_spec.t')).toBe(2);
    await second.close();
    await second.close(); // idempotent
    expect(existsSync(path)).toBe(false);

    // A later warehouse gets a fresh, empty directory.
    const third = await createWarehouse();
    try {
      expect(dataPathOf(third)).not.toBe(path);
      const result = await third.client.query({
        query: "SELECT count() AS n FROM system.databases WHERE name = 'shared_spec'",
        format: 'JSONEachRow',
      });
      const [row] = await result.json<{ n: string | number }>();
      expect(Number(row?.n)).toBe(0);
    } finally {
      await third.close();
    }
    expect(existsSync(dataPathOf(third))).toBe(false);
  });
});

describe('createWarehouse with CLICKHOUSE_URL', () => {
  const previous = process.env['CLICKHOUSE_URL'];
  afterEach(() => {
    if (previous === undefined) delete process.env['CLICKHOUSE_URL'];
    else process.env['CLICKHOUSE_URL'] = previous;
  });

  it('fails clearly, without leaking the password, when the server does not answer', async () => {
    process.env['CLICKHOUSE_URL'] = 'http://default:secret@127.0.0.1:1';
    // @clickhouse/client logs the failed request itself; keep the test output readable.
    const quiet = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const error = await createWarehouse()
      .catch((caught: unknown) => caught)
      .finally(() => quiet.mockRestore());
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/^CLICKHOUSE_URL=http:\/\/default:\*\*\*@127\.0\.0\.1:1\/ is set but not usable: /);
    expect((error as Error).message).not.toContain('secret');
  });
});
