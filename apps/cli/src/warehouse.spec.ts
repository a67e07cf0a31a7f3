import { tempDir, type TempDirHandle } from '@tollstream/testing';
import { join } from 'node:path';
import { runCli } from './program';
import { memoryIo } from './test-support';

// Runs the commands in this process against an embedded warehouse (chDB) in a temp directory.
describe('tollstream migrate / sql (embedded warehouse)', () => {
  let dir: TempDirHandle;
  let dataDir: string;
  const run = async (args: string[]) => {
    const io = memoryIo({});
    const code = await runCli(args, io);
    return { code, out: io.out(), err: io.err() };
  };

  beforeAll(async () => {
    dir = await tempDir('cli-warehouse');
    dataDir = join(dir.path, 'warehouse');
  });
  afterAll(async () => {
    const { drainPending } = await import('chdb');
    await drainPending();
    await dir.remove();
  });

  it('says clearly when there is no warehouse yet', async () => {
    const result = await run(['sql', 'SELECT 1', '--data-dir', dataDir]);
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/no warehouse at .*: start the warehouse-loader/);
  });

  it('migrates idempotently, then prints tables, JSON and CSV, and refuses writes', async () => {
    expect(await run(['migrate', '--data-dir', dataDir])).toMatchObject({ code: 0, out: 'database tolls: applied migration(s) 1, 2; schema version 2\n' });
    expect(await run(['migrate', '--data-dir', dataDir])).toMatchObject({ code: 0, out: 'database tolls: schema already at version 2\n' });

    const table = await run(['sql', "SELECT name FROM system.tables WHERE database = 'tolls' AND name LIKE 'traffic%' ORDER BY name", '--data-dir', dataDir]);
    expect(table.code).toBe(0);
    expect(table.out).toBe(['name', '────────────────────────', 'traffic_alerts', 'traffic_per_station_slot', 'traffic_windows', 'traffic_windows_latest', '4 rows', ''].join('\n'));

    const json = await run(['sql', 'SELECT stored_rows, age_seconds FROM tolls.freshness', '--data-dir', dataDir, '--format', 'json']);
    expect(JSON.parse(json.out)).toEqual([{ stored_rows: 0, age_seconds: null }]);
    const csv = await run(['sql', 'SELECT 1 AS a, \'x,y\' AS b', '--data-dir', dataDir, '--format', 'csv']);
    expect(csv.out).toBe('a,b\n1,"x,y"\n');

    const refused = await run(['sql', 'DROP TABLE tolls.transactions', '--data-dir', dataDir]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS/);
    const bad = await run(['sql', 'SELECT nope FROM tolls.transactions', '--data-dir', dataDir]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^error: .*nope/);
  });
});
