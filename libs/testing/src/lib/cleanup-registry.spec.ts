import { existsSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { hostProcess, trackedDirList } from './cleanup-registry';
import { dockerConfiguredSync } from './docker';
import { describeIf } from './conditional';
import { startProcess } from './process';
import { isProcessRunning } from './process-state';
import { tempDir, type TempDirHandle } from './temp-dir';
import { waitFor } from './wait-for';

/**
 * Runs a script that starts a nats-server and a temp dir through the harness and then ends
 * abnormally; checks that nothing is left behind.
 */
const localBinary = !process.env['NATS_URL'] && !dockerConfiguredSync();
const describeLocal = (name: string, body: () => void) =>
  describeIf(localBinary, name, 'applies to the harness-owned nats-server only (NATS_URL is set or Docker is used)', body);

interface Leftovers {
  pids: number[];
  dirs: string[];
}

describe('cleanup hooks under jest', () => {
  it('hook the real process: jest gives each test file a copy of `process` whose events never fire', async () => {
    expect(hostProcess).not.toBe(process);
    expect(hostProcess.pid).toBe(process.pid);
    const before = hostProcess.listenerCount('exit');
    const dir = await tempDir('hook-check');
    expect(trackedDirList()).toContain(dir.path);
    expect(hostProcess.listenerCount('exit')).toBe(before + 1);
    await dir.remove();
    // nothing tracked any more: the hooks are gone again (no pile-up across test files)
    expect(hostProcess.listenerCount('exit')).toBe(before);
  });
});

describeLocal('cleanup of everything the harness started', () => {
  let scripts: TempDirHandle;

  beforeAll(async () => {
    scripts = await tempDir('cleanup-spec');
    const script = `
      import { startNats } from ${JSON.stringify(join(__dirname, 'nats'))};
      import { tempDir } from ${JSON.stringify(join(__dirname, 'temp-dir'))};
      import { trackedDirList, trackedProcessList } from ${JSON.stringify(join(__dirname, 'cleanup-registry'))};
      async function main(): Promise<void> {
        await startNats();
        await tempDir('leftover');
        const pids = trackedProcessList().map((tracked) => tracked.pid);
        console.log('LEFTOVERS ' + JSON.stringify({ pids, dirs: trackedDirList() }));
        const mode = process.argv[2];
        if (mode === 'return') return; // forgot stop(): node must still exit, and clean up
        if (mode === 'throw') throw new Error('a failing test run');
        if (mode === 'exit') process.exit(1);
        process.kill(process.pid, mode === 'sigkill' ? 'SIGKILL' : 'SIGTERM');
        setInterval(() => undefined, 1_000);
      }
      void main();
    `;
    writeFileSync(join(scripts.path, 'abandon.ts'), script);
  });

  afterAll(async () => {
    await scripts.remove();
  });

  async function abandon(mode: 'return' | 'exit' | 'throw' | 'sigterm' | 'sigkill'): Promise<{ leftovers: Leftovers; code: number | null; signal: NodeJS.Signals | null }> {
    const child = await startProcess({
      command: process.execPath,
      args: ['--import', 'tsx', join(scripts.path, 'abandon.ts'), mode],
      cwd: join(__dirname, '..', '..', '..', '..'),
      name: `abandon-${mode}`,
      readyLine: /^LEFTOVERS /,
      readyTimeoutMs: 20_000,
    });
    const line = child.output().split('\n').find((candidate) => candidate.startsWith('LEFTOVERS ')) ?? '';
    const leftovers = JSON.parse(line.slice('LEFTOVERS '.length)) as Leftovers;
    const code = await child.exited;
    return { leftovers, code, signal: child.exitSignal() };
  }

  it.each(['return', 'exit', 'throw', 'sigterm'] as const)('script ends by %s: nats-server killed, dirs removed at once', async (mode) => {
    const { leftovers, code, signal } = await abandon(mode);
    expect(leftovers.pids).toHaveLength(1);
    expect(leftovers.dirs).toHaveLength(2);
    if (mode === 'sigterm') expect(signal).toBe('SIGTERM');
    else expect(code).toBe(mode === 'return' ? 0 : 1);
    for (const pid of leftovers.pids) expect(isProcessRunning(pid)).toBe(false);
    for (const dir of leftovers.dirs) expect(existsSync(dir)).toBe(false);
  });

  it('SIGKILLed test process: the watchdog kills nats-server within ~1 s', async () => {
    const { leftovers, signal } = await abandon('sigkill');
    expect(signal).toBe('SIGKILL');
    const [natsPid] = leftovers.pids;
    if (natsPid === undefined) throw new Error('no nats-server pid reported');
    await waitFor(() => !isProcessRunning(natsPid), { timeoutMs: 3_000, intervalMs: 50, description: 'the orphaned nats-server to be killed' });
    // Without any handler running nobody can remove the directories (they are in the OS temp dir).
    for (const dir of leftovers.dirs) await rm(dir, { recursive: true, force: true });
  });
});
