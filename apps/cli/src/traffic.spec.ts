import { startNats, tempDir, type NatsHandle, type TempDirHandle } from '@tollstream/testing';
import { openWarehouse } from '@tollstream/warehouse';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from './program';
import { memoryIo } from './test-support';

let nats: NatsHandle;
let dir: TempDirHandle;
beforeAll(async () => {
  nats = await startNats();
  dir = await tempDir('traffic-cli');
});
afterAll(async () => {
  await nats?.stop();
  await dir?.remove();
});

const header = 'station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max';

describe('tollstream traffic', () => {
  it('rejects a bad reference file naming lines and fields, applies nothing; dry-run then load then list', async () => {
    const bad = join(dir.path, 'bad.csv');
    await writeFile(bad, [header, 'st-001,2026-11-01T00:00:00Z,UTC,30,mon,07:30,10,80', 'st-002,2026-11-01T00:00:00Z,UTC,30,mon,07:30,ten,80', 'st-003,2026-11-01,UTC,30,mon,07:30,1,'].join('\n'));
    const badIo = memoryIo();
    expect(await runCli(['traffic', 'load', bad, '--nats-url', nats.url], badIo)).toBe(1);
    expect(badIo.err()).toContain('nothing applied');
    expect(badIo.err()).toContain('line 3: min: required');
    expect(badIo.err()).toContain('line 4: effective_from:');
    const listIo = memoryIo();
    expect(await runCli(['traffic', 'list', '--nats-url', nats.url], listIo)).toBe(0);
    expect(listIo.out()).toBe('');

    const good = join(dir.path, 'good.csv');
    await writeFile(good, [header, 'st-001,2026-11-01T00:00:00Z,UTC,30,mon,07:30,10,80', 'st-002,2026-11-01T00:00:00Z,Asia/Kathmandu,30,tue,07:30,5,'].join('\n'));
    const dryIo = memoryIo();
    expect(await runCli(['traffic', 'load', good, '--dry-run', '--nats-url', nats.url], dryIo)).toBe(0);
    expect(dryIo.out()).toMatch(/^add\s+st-001 effective 2026-11-01T00:00:00.000Z/m);
    expect(dryIo.out()).toContain('dry run: 2 station version(s) would change; nothing written');
    const emptyIo = memoryIo();
    await runCli(['traffic', 'list', '--nats-url', nats.url], emptyIo);
    expect(emptyIo.out()).toBe('');

    const loadIo = memoryIo();
    expect(await runCli(['traffic', 'load', good, '--nats-url', nats.url], loadIo)).toBe(0);
    expect(loadIo.out()).toContain('applied: 2 station version(s) changed');
    const listed = memoryIo();
    await runCli(['traffic', 'list', '--nats-url', nats.url], listed);
    expect(listed.out()).toMatch(/^st-001\t2026-11-01T00:00:00.000Z\tUTC\t30m\t1 slots\t/m);
    expect(listed.out()).toMatch(/^st-002\t.*Asia\/Kathmandu/m);
  });
});

describe('tollstream traffic propose (embedded warehouse)', () => {
  afterAll(async () => {
    const { drainPending } = await import('chdb');
    await drainPending();
  });

  it('proposes bands from the median of the same slot over the weeks and writes a loadable file', async () => {
    const dataDir = join(dir.path, 'warehouse');
    expect(await runCli(['migrate', '--data-dir', dataDir], memoryIo())).toBe(0);
    const warehouse = await openWarehouse({ dataDir });
    const until = Date.parse('2026-11-23T00:00:00Z'); // Monday
    const rows: Array<Record<string, unknown>> = [];
    // st-001, Mondays 08:00-08:30 UTC of the last 3 weeks: 4, 6 and 10 vehicles.
    [4, 6, 10].forEach((count, week) => {
      for (let i = 0; i < count; i++) {
        const occurred = new Date(until - (week + 1) * 7 * 86_400_000 + 8 * 3_600_000 + i * 60_000).toISOString().replace('T', ' ').replace('Z', '');
        rows.push({ station_id: 'st-001', transaction_id: `w${week}-${i}`, lane_id: 'L1', tag_id: 't', plate: 'p', account_id: '', vehicle_class: 'CAR', amount_minor: 1, currency: 'USD', occurred_at: occurred, ingested_at: occurred, partition: 0, stream_sequence: rows.length + 1, batch_id: 'b' });
      }
    });
    await warehouse.client.insert({ table: 'tolls.transactions', values: rows, format: 'JSONEachRow' });
    await warehouse.close();

    const out = join(dir.path, 'proposed.csv');
    const io = memoryIo();
    const code = await runCli(['traffic', 'propose', '--data-dir', dataDir, '--out', out, '--weeks', '3', '--until', '2026-11-23T00:00:00Z', '--min-ratio', '0.5', '--max-ratio', '2'], io);
    expect(io.err()).toBe('');
    expect(code).toBe(0);
    expect(io.out()).toMatch(/^wrote .*proposed.csv: 336 slot\(s\) of 1 station\(s\) from 3 warehouse row\(s\)/);
    const { readFile } = await import('node:fs/promises');
    const csv = await readFile(out, 'utf8');
    expect(csv).toContain('st-001,2026-11-23T00:00:00.000Z,UTC,30,mon,08:00,3,12\n'); // median 6
    expect(csv).toContain('st-001,2026-11-23T00:00:00.000Z,UTC,30,mon,08:30,0,0\n');
    const dry = memoryIo();
    expect(await runCli(['traffic', 'load', out, '--dry-run', '--nats-url', nats.url], dry)).toBe(0);
    expect(dry.out()).toMatch(/^add\s+st-001 effective 2026-11-23T00:00:00.000Z/m);
  }, 60_000);
});
