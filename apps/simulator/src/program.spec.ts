import { tempDir } from '@tollstream/testing';
import { parseReferenceFile } from '@tollstream/traffic';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runSimulatorCli } from './program';

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  return { stream, text: () => text };
}

async function cli(argv: string[]) {
  const stdout = capture();
  const stderr = capture();
  const code = await runSimulatorCli(argv, { stdout: stdout.stream, stderr: stderr.stream, handleSignals: false });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe('simulator command line', () => {
  let dir: { path: string; remove: () => Promise<void> };
  beforeAll(async () => {
    dir = await tempDir('simulator-cli');
  });
  afterAll(() => dir.remove());

  it('offers the client TLS options (ADR 0017) and refuses half a client certificate before generating traffic', async () => {
    const help = await cli(['run', '--help']);
    for (const option of ['--tls ', '--tls-ca-file <file>', '--tls-cert-file <file>', '--tls-key-file <file>', '--tls-server-name <name>']) expect(help.stdout).toContain(option);
    const tokenFile = join(dir.path, 'tls.token');
    await writeFile(tokenFile, 'st-token-0123456789');
    const half = await cli(['run', '--token-file', tokenFile, '--tls-cert-file', join(dir.path, 'station.crt'), '--max-records', '1']);
    expect(half).toMatchObject({ code: 1, stderr: 'error: a client certificate needs both --tls-cert-file and --tls-key-file\n' });
    const missing = await cli(['run', '--token-file', tokenFile, '--tls-ca-file', join(dir.path, 'nope.crt'), '--max-records', '1']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: cannot read the CA file .*nope\.crt: ENOENT\n$/);
  });

  it.each([
    ['duplicates=1.5', 'fault "duplicates=1.5": duplicates: "1.5" is not a fraction between 0 and 1'],
    ['late=5m', 'fault "late=5m": expected DUR:F'],
    ['burst=60s:five@10s', 'expected DUR:Kx[@DUR]'],
    ['explode=1', 'fault "explode=1": unknown fault'],
    ['out-of-order=2 seconds', 'is not a duration'],
  ])('refuses --faults %s with a clear message and a non-zero exit', async (faults, message) => {
    const result = await cli(['run', '--token-file', join(dir.path, 'none'), '--faults', faults]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(message);
  });

  it('refuses a station the model does not have', async () => {
    const tokenFile = join(dir.path, 'token');
    await writeFile(tokenFile, 'station-token-0123456789\n');
    const result = await cli(['run', '--token-file', tokenFile, '--stations', '3', '--faults', 'silent=st-009', '--ingest-address', '127.0.0.1:1']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('unknown station "st-009"');
    expect(result.stderr).not.toContain('station-token-0123456789');
  });

  it('refuses a missing token file without starting', async () => {
    const missing = await cli(['run', '--token-file', join(dir.path, 'does-not-exist')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read the token file');
    const none = await cli(['run']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('--token-file is required');
  });

  it('refuses bad numbers and patterns', async () => {
    expect((await cli(['run', '--rate', 'fast'])).stderr).toContain('expected a positive number of records per second');
    expect((await cli(['run', '--pattern', 'wavy'])).code).toBe(1);
    expect((await cli(['run', '--backfill', '100h', '--token-file', join(dir.path, 'token')])).stderr).toContain('--backfill must stay below');
  });

  it('writes the same scenario files for the same seed', async () => {
    const args = (out: string) => ['scenario', '--out', out, '--seed', 'demo', '--stations', '5', '--accounts', '40', '--time-zones', 'America/New_York,Asia/Kathmandu'];
    const first = await cli(args(join(dir.path, 'a')));
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ event: 'scenario', dir: join(dir.path, 'a'), files: ['ingest-stations.json', 'station-time-zones.json', 'traffic-references.csv', 'accounts.csv', 'station-token'] });
    expect((await cli(args(join(dir.path, 'b')))).code).toBe(0);
    for (const name of ['ingest-stations.json', 'station-time-zones.json', 'traffic-references.csv', 'accounts.csv', 'station-token']) {
      expect(await readFile(join(dir.path, 'b', name), 'utf8')).toBe(await readFile(join(dir.path, 'a', name), 'utf8'));
    }
    const credentials = JSON.parse(await readFile(join(dir.path, 'a', 'ingest-stations.json'), 'utf8')) as { stations: Array<{ token: string; stationIds: string[] }> };
    expect(credentials.stations[0]?.stationIds).toEqual(['st-001', 'st-002', 'st-003', 'st-004', 'st-005']);
    expect(credentials.stations[0]?.token).toBe((await readFile(join(dir.path, 'a', 'station-token'), 'utf8')).trim());
    expect(JSON.parse(await readFile(join(dir.path, 'a', 'station-time-zones.json'), 'utf8'))).toEqual({
      stations: { 'st-001': 'America/New_York', 'st-002': 'Asia/Kathmandu', 'st-003': 'America/New_York', 'st-004': 'Asia/Kathmandu', 'st-005': 'America/New_York' },
    });
    const references = (await readFile(join(dir.path, 'a', 'traffic-references.csv'), 'utf8')).trim().split('\n');
    expect(references).toHaveLength(1 + 5 * 7 * 48);
    expect(references[1]).toMatch(/^st-001,2026-01-01T00:00:00Z,America\/New_York,30,mon,00:00,\d+,\d+$/);
    // Loadable by `tollstream traffic load`: the same parser, no errors, every slot of the week.
    const versions = parseReferenceFile(references.join('\n'), 'csv');
    expect(versions.map((v) => [v.stationId, v.timeZone, Object.keys(v.bands).length])).toEqual([
      ['st-001', 'America/New_York', 336],
      ['st-002', 'Asia/Kathmandu', 336],
      ['st-003', 'America/New_York', 336],
      ['st-004', 'Asia/Kathmandu', 336],
      ['st-005', 'America/New_York', 336],
    ]);
    expect((await readFile(join(dir.path, 'a', 'accounts.csv'), 'utf8')).split('\n')[0]).toBe('account_id,tag_id,plate,vehicle_class,monthly_threshold_minor,currency,heavy_user');
  });
});
