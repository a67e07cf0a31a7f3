import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startIngestDouble } from './test-support';

// The command line as operators run it: `npx tsx apps/cli/src/main.ts ...`, a separate process.
const repoRoot = resolve(__dirname, '../../..');
const token = 'st-demo.e2e-token';
jest.setTimeout(60_000); // child processes; under the multi-project root config the preset's timeout does not apply

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * `npx tsx apps/cli/src/main.ts ...` as operators run it; `direct` runs the same file in one node
 * process (`node --import tsx`) for the signal test, so that the signal reaches exactly the CLI
 * and not a chain of wrappers that relay it (npm exec, tsx) with their own timing.
 */
function tollstream(args: string[], env: NodeJS.ProcessEnv, onStart?: (pid: number) => void, direct = false): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const [command, prefix] = direct ? [process.execPath, ['--import', 'tsx']] : ['npx', ['tsx']];
    const child = spawn(command, [...prefix, 'apps/cli/src/main.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
    if (child.pid !== undefined) onStart?.(child.pid);
  });
}

describe('tollstream (child process)', () => {
  let dir: string;
  let tokenFile: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tollstream-e2e-'));
    tokenFile = join(dir, 'station.token');
    await writeFile(tokenFile, token);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes a sample, sends it with exit code 2 for its faults, and prints plain progress off a TTY', async () => {
    const ingest = await startIngestDouble(token);
    try {
      const file = join(dir, 'sample.ndjson');
      const sample = await tollstream(['sample', file, '--count', '400', '--with-faults', '--seed', 'e2e'], {});
      expect(sample).toMatchObject({ code: 0, stdout: expect.stringContaining('wrote 400 lines') });
      const sent = await tollstream(['send', file, '--batch-size', '100'], {
        INGEST_ADDRESS: ingest.address,
        STATION_TOKEN_FILE: tokenFile,
      });
      expect(sent.stderr).toContain('retrying lines 1-');
      expect(sent.stderr).toMatch(/progress: 100% \| 400 lines acknowledged/);
      expect(sent.stdout).toMatch(/unparseable\s+4\s+lines skipped/);
      expect(sent.stdout).toMatch(/rejected\s+1\s+INVALID_FIELD 1/);
      expect(sent.stdout + sent.stderr).not.toContain(token);
      expect(sent.code).toBe(2);
    } finally {
      await ingest.stop();
    }
  });

  it('stops gracefully on Ctrl-C with exit code 130, and the rerun resumes from the checkpoint', async () => {
    const ingest = await startIngestDouble(token, 40);
    try {
      const file = join(dir, 'big.ndjson');
      await tollstream(['sample', file, '--count', '1000', '--seed', 'e2e'], {});
      const env = { INGEST_ADDRESS: ingest.address, STATION_TOKEN: token };
      const args = ['send', file, '--batch-size', '20', '--in-flight', '2', '--json', '--no-progress'];
      const interrupted = await tollstream(args, env, (pid) => {
        const poll = setInterval(() => {
          if (ingest.calls() >= 10) {
            clearInterval(poll);
            process.kill(pid, 'SIGINT');
          }
        }, 10);
      }, true);
      expect(interrupted.stderr).toContain('SIGINT: stopping after the batches in flight');
      expect(interrupted.code).toBe(130);
      const first = JSON.parse(interrupted.stdout) as { linesAcknowledged: number; interrupted: boolean; accepted: number };
      expect(first.interrupted).toBe(true);
      expect(first.linesAcknowledged).toBeGreaterThan(0);
      expect(first.linesAcknowledged).toBeLessThan(1000);

      const resumed = await tollstream(args, env);
      expect(resumed.code).toBe(0);
      const second = JSON.parse(resumed.stdout) as { resumedAfterLine: number; accepted: number; duplicate: number };
      expect(second.resumedAfterLine).toBe(first.linesAcknowledged);
      expect(first.accepted + second.accepted).toBe(1000);
      expect(ingest.stored.size).toBe(1000);
    } finally {
      await ingest.stop();
    }
  });

  it('runs through the npm script too', async () => {
    const run = await new Promise<Run>((resolvePromise, reject) => {
      const child = spawn('npm', ['run', '--silent', 'tollstream', '--', 'send', '--help'], { cwd: repoRoot });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr: '' }));
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: tollstream send [options] <file>');
  });
});
