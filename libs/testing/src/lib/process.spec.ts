import { trackedProcessList } from './cleanup-registry';
import { startProcess } from './process';
import { isProcessRunning } from './process-state';
import { waitFor } from './wait-for';

const node = process.execPath;

describe('startProcess', () => {
  it('resolves on the ready line, captures output, and SIGKILL ends it with a null code', async () => {
    const child = await startProcess({
      command: node,
      args: ['-e', "console.log('booting'); console.error('listening on 1234'); setInterval(() => {}, 1000);"],
      name: 'sleeper',
      readyLine: /listening on \d+/,
      readyTimeoutMs: 5_000,
    });
    expect(child.pid).toBeGreaterThan(0);
    expect(isProcessRunning(child.pid)).toBe(true);
    expect(trackedProcessList().map((tracked) => tracked.pid)).toContain(child.pid);
    expect(child.output()).toContain('booting');
    expect(child.output()).toContain('listening on 1234');

    await expect(child.kill('SIGKILL')).resolves.toBeNull();
    expect(child.exitSignal()).toBe('SIGKILL');
    await expect(child.exited).resolves.toBeNull();
    expect(isProcessRunning(child.pid)).toBe(false);
    expect(trackedProcessList().map((tracked) => tracked.pid)).not.toContain(child.pid);
    // killing an ended process is harmless
    await expect(child.kill()).resolves.toBeNull();
  });

  it('reports the exit code of a graceful shutdown', async () => {
    const child = await startProcess({
      command: node,
      args: ['-e', "process.on('SIGTERM', () => { console.log('bye'); process.exit(3); }); console.log('ready'); setInterval(() => {}, 1000);"],
      name: 'graceful',
      readyLine: /^ready$/,
    });
    await expect(child.kill('SIGTERM')).resolves.toBe(3);
    expect(child.exitSignal()).toBeNull();
    expect(child.output()).toContain('bye');
  });

  it('resolves at once without a ready line, and exited gives the exit code', async () => {
    const child = await startProcess({ command: node, args: ['-e', "console.log('done'); process.exit(7)"], name: 'short' });
    await expect(child.exited).resolves.toBe(7);
    expect(child.output()).toBe('done');
  });

  it('passes env and cwd', async () => {
    const child = await startProcess({
      command: node,
      args: ['-e', 'console.log(process.env.STATION_ID + " in " + process.cwd())'],
      env: { ...process.env, STATION_ID: 'ST-042' },
      cwd: '/tmp',
      name: 'env-check',
    });
    await child.exited;
    expect(child.output()).toBe('ST-042 in /tmp');
  });

  it('rejects with the captured output when the process exits before the ready line', async () => {
    await expect(
      startProcess({
        command: node,
        args: ['-e', "console.error('config error: NATS_URL missing'); process.exit(2)"],
        name: 'ingestor',
        readyLine: /ready/,
      }),
    ).rejects.toThrow(/ingestor: .* exited \(code 2, signal null\) before printing a line matching \/ready\/[\s\S]*config error: NATS_URL missing/);
  });

  it('rejects with the captured output on timeout and kills the process', async () => {
    const error = await startProcess({
      command: node,
      args: ['-e', "console.log('still warming up'); setInterval(() => {}, 1000);"],
      name: 'slow',
      readyLine: /never/,
      readyTimeoutMs: 300,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(/slow: no line matching \/never\/ within 300 ms/);
    expect(message).toContain('still warming up');
    const pid = Number(/pid (\d+)/.exec(message)?.[1]);
    expect(isProcessRunning(pid)).toBe(false);
  });

  it('rejects clearly when the command does not exist', async () => {
    await expect(startProcess({ command: 'surely-not-a-command-xyz', args: [], name: 'missing' })).rejects.toThrow(
      /missing: could not start `surely-not-a-command-xyz`: .*ENOENT/,
    );
  });

  it('keeps only the last ~200 lines', async () => {
    const child = await startProcess({
      command: node,
      args: ['-e', 'for (let i = 0; i < 1000; i++) console.log("line " + i)'],
      name: 'chatty',
    });
    await child.exited;
    const lines = child.output().split('\n');
    expect(lines).toHaveLength(200);
    expect(lines[199]).toBe('line 999');
  });

  it('SIGKILL takes the whole process group (no orphaned grandchildren, as with npx tsx …)', async () => {
    const child = await startProcess({
      command: 'sh',
      args: ['-c', 'sleep 300 & echo "grandchild $!"; wait'],
      name: 'wrapper',
      readyLine: /grandchild \d+/,
    });
    const grandchild = Number(/grandchild (\d+)/.exec(child.output())?.[1]);
    expect(isProcessRunning(grandchild)).toBe(true);
    await child.kill('SIGKILL');
    await waitFor(() => !isProcessRunning(grandchild), { timeoutMs: 2_000, intervalMs: 20, description: 'the grandchild to die' });
  });
});
