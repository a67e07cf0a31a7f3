import { spawn } from 'node:child_process';
import { isProcessRunning } from './process-state';
import { waitFor } from './wait-for';

describe('isProcessRunning', () => {
  it('is true for this process and false for nonsense pids', () => {
    expect(isProcessRunning(process.pid)).toBe(true);
    expect(isProcessRunning(0)).toBe(false);
    expect(isProcessRunning(-5)).toBe(false);
    expect(isProcessRunning(2 ** 22 + 17)).toBe(false);
  });

  it('counts a killed-but-unreaped child (zombie) as not running', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const pid = child.pid ?? -1;
    expect(isProcessRunning(pid)).toBe(true);
    // Until node reaps it (when it processes SIGCHLD), the killed child is a zombie.
    child.kill('SIGKILL');
    await waitFor(() => !isProcessRunning(pid), { timeoutMs: 2_000, intervalMs: 10, description: 'the child to die' });
    await exited;
  });
});
