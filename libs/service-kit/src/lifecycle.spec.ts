import { spawn } from 'node:child_process';
import path from 'node:path';

const fixture = path.join(__dirname, '__fixtures__', 'run-service.ts');

interface ChildRun {
  /** Resolves with the first JSON log line whose msg matches. */
  waitForLog(msg: string): Promise<void>;
  kill(signal: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; messages: string[]; stderr: string }>;
}

/**
 * Runs the fixture as `node --import tsx`: one process, so the signals reach runService directly
 * (through `npx tsx` they would pass two wrapper processes first).
 */
function runFixture(env: Record<string, string>): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const messages: string[] = [];
  const waiters: Array<{ msg: string; resolve: () => void }> = [];
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    let newline = stdout.indexOf('\n');
    while (newline >= 0) {
      const line = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      newline = stdout.indexOf('\n');
      const msg = String((JSON.parse(line) as { msg?: unknown }).msg);
      messages.push(msg);
      for (const waiter of waiters.filter((candidate) => candidate.msg === msg)) waiter.resolve();
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; messages: string[]; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, messages, stderr })),
  );
  return {
    waitForLog: (msg) =>
      messages.includes(msg)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ msg, resolve });
            void exited.then(() => reject(new Error(`fixture exited before logging "${msg}"; stderr: ${stderr}`)));
          }),
    kill: (signal) => child.kill(signal),
    exited,
  };
}

describe('runService (in a child process)', () => {
  it('stops on SIGTERM and exits 0 when stop() finishes within the grace period', async () => {
    const run = runFixture({ FIXTURE_STOP_MS: '100', FIXTURE_GRACE_MS: '2000' });
    await run.waitForLog('started');
    run.kill('SIGTERM');
    const { code, messages } = await run.exited;
    expect(code).toBe(0);
    expect(messages).toEqual(
      expect.arrayContaining(['shutdown requested; stopping', 'stop called', 'stop finished', 'stopped cleanly']),
    );
  });

  it('exits 1 when stop() takes longer than the grace period', async () => {
    const run = runFixture({ FIXTURE_STOP_MS: '10000', FIXTURE_GRACE_MS: '200' });
    await run.waitForLog('started');
    run.kill('SIGTERM');
    const { code, messages } = await run.exited;
    expect(code).toBe(1);
    expect(messages).toContain('stop called');
    expect(messages).not.toContain('stop finished');
    expect(messages).toContain('stop did not finish within the grace period; exiting');
  });

  it('exits 1 at once on a second signal', async () => {
    const run = runFixture({ FIXTURE_STOP_MS: '10000', FIXTURE_GRACE_MS: '10000' });
    await run.waitForLog('started');
    run.kill('SIGINT');
    await run.waitForLog('stop called');
    run.kill('SIGINT');
    const { code, messages } = await run.exited;
    expect(code).toBe(1);
    expect(messages).toContain('second signal during shutdown; forcing exit');
  });

  it('exits 1 when start() fails, printing a config error plainly without secrets', async () => {
    const run = runFixture({ FIXTURE_MODE: 'bad-config' });
    const { code, messages, stderr } = await run.exited;
    expect(code).toBe(1);
    expect(messages).toContain('start failed; exiting');
    expect(stderr).toContain('fixture: Invalid configuration: FIXTURE_PORT: expected a number from 0 to 65535, got "abc"');
    expect(stderr).toContain('FIXTURE_SECRET: ');
    expect(stderr).not.toContain('hunter2');
  });

  it('exits 1 on an unhandled promise rejection', async () => {
    const run = runFixture({ FIXTURE_MODE: 'unhandled-rejection' });
    const { code, messages } = await run.exited;
    expect(code).toBe(1);
    expect(messages).toContain('unhandled promise rejection; exiting');
  });
});
