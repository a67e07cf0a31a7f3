import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './program';
import { memoryIo, startIngestDouble } from './test-support';

const token = 'st-demo.0123456789abcdef';
let dir: string;
let ingest: Awaited<ReturnType<typeof startIngestDouble>>;
let tokenFile: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tollstream-cli-'));
  ingest = await startIngestDouble(token);
  tokenFile = join(dir, 'station.token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
});
afterEach(async () => {
  await ingest.stop();
  await rm(dir, { recursive: true, force: true });
});

async function sample(name: string, extra: string[] = []): Promise<string> {
  const path = join(dir, name);
  const io = memoryIo();
  const code = await runCli(['sample', path, '--count', '300', '--seed', '7', '--now', '2024-05-01T09:00:00Z', ...extra], io);
  expect(code).toBe(0);
  return path;
}

const send = (file: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) => {
  const io = memoryIo(env);
  const args = ['send', file, '--ingest-address', ingest.address, '--batch-size', '50', ...extra];
  return runCli(args, io).then((code) => ({ code, out: io.out(), err: io.err() }));
};

describe('tollstream --help', () => {
  it.each([[['--help']], [['send', '--help']], [['sample', '--help']], [['help', 'send']]])('%j prints usage and exits 0', async (args) => {
    const io = memoryIo();
    expect(await runCli(args, io)).toBe(0);
    expect(io.out()).toMatch(/^Usage: tollstream/);
  });

  it('documents every send option', async () => {
    const io = memoryIo();
    await runCli(['send', '--help'], io);
    for (const option of ['--ingest-address', '--token-file', '--format', '--batch-size', '--in-flight', '--checkpoint', '--restart', '--no-progress', '--json']) {
      expect(io.out()).toContain(option);
    }
    expect(io.out()).toContain('Exit codes: 0');
  });

  it('exits 1 on a usage error', async () => {
    const io = memoryIo();
    expect(await runCli(['send', 'x.ndjson', '--batch-size', 'many'], io)).toBe(1);
    expect(io.err()).toContain("option '--batch-size <n>' argument 'many' is invalid");
  });
});

describe('tollstream send', () => {
  it('exits 0 when every record was accepted, prints plain progress and a summary, never the token', async () => {
    const file = await sample('clean.ndjson');
    const result = await send(file, ['--token-file', tokenFile]);
    expect(result.code).toBe(0);
    expect(result.err).toContain(`sending ${file} to ${ingest.address}`);
    expect(result.err).toMatch(/retrying lines 1-50 \(attempt 2 of 8\) in \d\.\d s: UNAVAILABLE: ingestor warming up/);
    expect(result.err).toMatch(/progress: 100% \| 300 lines acknowledged \| accepted 300/);
    expect(result.out).toMatch(/clean\.ndjson \(ndjson\): complete in/);
    expect(result.out).toMatch(/accepted\s+300/);
    expect(`${result.out}${result.err}`).not.toContain(token);
    expect(ingest.stored.size).toBe(300);
  });

  it('exits 2 when lines were unparseable or records rejected, and lists them with line numbers', async () => {
    const file = await sample('faults.ndjson', ['--with-faults']);
    const result = await send(file, ['--no-progress'], { STATION_TOKEN: token });
    expect(result.code).toBe(2);
    expect(result.err).toBe('');
    expect(result.out).toMatch(/unparseable\s+3\s+lines skipped/);
    expect(result.out).toMatch(/duplicate\s+2/);
    expect(result.out).toMatch(/rejected\s+1\s+INVALID_FIELD 1/);
    expect(result.out).toMatch(/^ {2}line \d+: amount_minor: "\d+\.\d\d" is not an integer$/m);
    expect(result.out).toMatch(/^ {2}line \d+: st-00\d-\w+-\d+: INVALID_FIELD: currency: "ZZZ"/m);
  });

  it('prints the summary as JSON with --json', async () => {
    const file = await sample('faults.ndjson', ['--with-faults']);
    const result = await send(file, ['--json', '--no-progress', '--token-file', tokenFile]);
    const summary = JSON.parse(result.out) as Record<string, unknown>;
    expect(summary).toMatchObject({
      linesRead: 300,
      unparseable: 3,
      duplicate: 2,
      rejected: 1,
      rejectedByCode: { INVALID_FIELD: 1 },
      complete: true,
      exitCode: 2,
    });
    expect(summary.accepted).toBe(300 - 3 - 2 - 1);
  });

  it('resumes from the checkpoint, refuses a changed input, and sends it again with --restart', async () => {
    const file = await sample('resume.ndjson');
    expect((await send(file, ['--no-progress', '--token-file', tokenFile])).code).toBe(0);
    const again = await send(file, ['--no-progress', '--token-file', tokenFile]);
    expect(again.code).toBe(0);
    expect(again.out).toContain('resumed after line 300');
    expect(again.out).toContain('nothing left to send');

    await appendFile(file, (await readFile(file, 'utf8')).split('\n')[0] + '\n');
    const changed = await send(file, ['--no-progress', '--token-file', tokenFile]);
    expect(changed.code).toBe(1);
    expect(changed.err).toMatch(/^error: the input changed since checkpoint .* refusing to resume\. Pass --restart/);

    const restarted = await send(file, ['--no-progress', '--restart', '--json', '--token-file', tokenFile]);
    expect(restarted.code).toBe(0);
    expect(JSON.parse(restarted.out)).toMatchObject({ accepted: 0, duplicate: 301, resumedAfterLine: 0 });
  });

  it('exits 1 with the reason for a refused token, a missing token, or a missing file', async () => {
    const file = await sample('x.ndjson');
    const refused = await send(file, ['--no-progress'], { STATION_TOKEN: 'not-the-token' });
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/error: the ingestor refused the station credentials \(UNAUTHENTICATED/);
    expect(refused.out + refused.err).not.toContain('not-the-token');

    const missing = await send(file, []);
    expect(missing).toMatchObject({ code: 1, err: expect.stringContaining('a station token is required') });

    const noFile = await send(join(dir, 'absent.ndjson'), ['--token-file', tokenFile]);
    expect(noFile).toMatchObject({ code: 1, err: expect.stringMatching(/^error: cannot read .*absent\.ndjson/m) });

    const noTokenFile = await send(file, ['--token-file', join(dir, 'none.token')]);
    expect(noTokenFile).toMatchObject({ code: 1, err: expect.stringContaining('cannot read the token file') });
  });

  it('takes the token file and the address from the environment', async () => {
    const file = await sample('env.ndjson');
    const io = memoryIo({ STATION_TOKEN_FILE: tokenFile, INGEST_ADDRESS: ingest.address });
    expect(await runCli(['send', file, '--no-progress'], io)).toBe(0);
    expect(ingest.stored.size).toBe(300);
  });

  it('reads CSV, chosen by extension or by --format', async () => {
    const header = 'transaction_id,station_id,lane_id,tag_id,vehicle_class,amount_minor,currency,occurred_at';
    const rows = ['tx-1,st-001,L01,TAG1,car,275,USD,2024-05-01T08:30:00Z', 'tx-2,st-001,L01,TAG2,bus,825,USD,2024-05-01T08:31:00-04:00'];
    const csv = join(dir, 'export.csv');
    await writeFile(csv, `${header}\n${rows.join('\n')}\n`);
    expect((await send(csv, ['--no-progress', '--token-file', tokenFile])).code).toBe(0);
    const txt = join(dir, 'export.txt');
    await writeFile(txt, `${header}\n${rows.join('\n')}\n`);
    const unknown = await send(txt, ['--no-progress', '--token-file', tokenFile]);
    expect(unknown).toMatchObject({ code: 1, err: expect.stringContaining('cannot tell the format') });
    const explicit = await send(txt, ['--no-progress', '--format', 'csv', '--json', '--token-file', tokenFile]);
    expect(JSON.parse(explicit.out)).toMatchObject({ duplicate: 2, complete: true });
  });
});
