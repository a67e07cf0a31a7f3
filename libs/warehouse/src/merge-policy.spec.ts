import { tempDir, type TempDirHandle } from '@tollstream/testing';
import { applyMigrations, MERGE_POLICY } from './lib/migrate';
import { openWarehouse, type WarehouseConnection } from './lib/connection';

describe('merge policy of the loaded tables (real embedded ClickHouse)', () => {
  let dir: TempDirHandle;
  let warehouse: WarehouseConnection;
  const db = 'merge_policy_spec';

  beforeAll(async () => {
    dir = await tempDir('merge-policy');
    warehouse = await openWarehouse({ dataDir: dir.path });
  }, 60_000);

  afterAll(async () => {
    await warehouse?.close();
    await dir?.remove();
  });

  it('sets fewer, wider merges on every table the loader inserts into, again harmlessly at every start', async () => {
    const first = await applyMigrations(warehouse.client, db);
    // chDB knows both settings: all of the policy is set.
    expect(first.mergePolicy).toEqual(MERGE_POLICY);
    const again = await applyMigrations(warehouse.client, db);
    expect(again.applied).toEqual([]);
    expect(again.mergePolicy).toEqual(MERGE_POLICY);
    for (const table of ['transactions', 'spend_windows', 'traffic_windows', 'alerts']) {
      const result = await warehouse.client.query({ query: `SHOW CREATE TABLE ${db}.${table}`, format: 'JSONEachRow' });
      const [{ statement }] = await result.json<{ statement: string }>();
      for (const [name, value] of Object.entries(MERGE_POLICY)) expect(statement).toContain(`${name} = ${value}`);
      // The settings of the migrations stay.
      expect(statement).toContain('non_replicated_deduplication_window = 10000');
    }
  }, 60_000);

  it('goes back to the engine\'s own merges when told (WAREHOUSE_MERGE_POLICY=engine)', async () => {
    const report = await applyMigrations(warehouse.client, db, undefined, 'engine');
    expect(report.mergePolicy).toEqual({});
    const result = await warehouse.client.query({ query: `SHOW CREATE TABLE ${db}.transactions`, format: 'JSONEachRow' });
    const [{ statement }] = await result.json<{ statement: string }>();
    for (const name of Object.keys(MERGE_POLICY)) expect(statement).not.toContain(name);
    expect(statement).toContain('non_replicated_deduplication_window = 10000');
  }, 60_000);
});
