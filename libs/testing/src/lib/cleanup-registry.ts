/**
 * Process-wide registry of everything the harness starts (child processes, temp dirs),
 * so that a crashing or failing test run never leaves a nats-server or a temp store behind.
 *
 * - Normal path: each handle's stop()/remove() unregisters itself.
 * - The host process's 'exit' event (the real process, also under jest): synchronous SIGKILL of
 *   every live process group and rmSync of every dir.
 * - SIGINT/SIGTERM/SIGHUP: the same cleanup, then the default behaviour (the signal is re-raised)
 *   when nobody else listens for it.
 * - Each spawned child also gets a tiny `sh` watchdog that SIGKILLs its process group when this
 *   Node process disappears without running any handler (SIGKILL, OOM kill).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { SH_ALIVE_FUNCTION } from './process-state';

interface TrackedProcess {
  readonly pid: number;
  readonly name: string;
  /** true when the child leads its own process group (spawned with `detached: true`). */
  readonly groupLeader: boolean;
}

const trackedProcesses = new Map<number, TrackedProcess>();
const trackedDirs = new Set<string>();
let hooksInstalled = false;

const forwardedSignals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * The real Node `process`. Under jest, the `process` global of a test file is a per-file copy
 * whose events never fire ('exit' and signal listeners registered on it are simply never called).
 * A function exported by a Node core module belongs to the host realm, so its `Function`
 * constructor evaluates in the host's global scope, where `process` is the real object.
 */
function resolveHostProcess(): NodeJS.Process {
  try {
    const HostFunction = readFileSync.constructor as FunctionConstructor;
    const candidate: unknown = new HostFunction('return process')();
    if (typeof candidate === 'object' && candidate !== null && 'pid' in candidate && 'on' in candidate) {
      return candidate as NodeJS.Process;
    }
  } catch {
    // fall back to the global below
  }
  return process;
}

export const hostProcess = resolveHostProcess();

function killQuietly(target: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch {
    return false;
  }
}

/** Sends a signal to a tracked child: to its whole process group when it leads one. */
export function signalTracked(pid: number, signal: NodeJS.Signals, wholeGroup: boolean): boolean {
  const tracked = trackedProcesses.get(pid);
  if (wholeGroup && (tracked?.groupLeader ?? true)) {
    if (killQuietly(-pid, signal)) return true;
  }
  return killQuietly(pid, signal);
}

/** Synchronous cleanup, safe to call from an 'exit' handler. Exported for tests and diagnostics. */
export function cleanupEverythingSync(): void {
  for (const tracked of trackedProcesses.values()) {
    if (tracked.groupLeader) killQuietly(-tracked.pid, 'SIGKILL');
    killQuietly(tracked.pid, 'SIGKILL');
  }
  trackedProcesses.clear();
  for (const dir of trackedDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort while exiting
    }
  }
  trackedDirs.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupEverythingSync();
  uninstallHooks();
  // When nobody else handles the signal, restore the default behaviour: terminate with it.
  if (hostProcess.listenerCount(signal) === 0) killQuietly(hostProcess.pid, signal);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  hostProcess.on('exit', cleanupEverythingSync);
  for (const signal of forwardedSignals) hostProcess.on(signal, onSignal);
}

/** Hooks are removed again once nothing is tracked, so listeners never pile up (jest re-loads modules per file). */
function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  hostProcess.removeListener('exit', cleanupEverythingSync);
  for (const signal of forwardedSignals) hostProcess.removeListener(signal, onSignal);
}

function uninstallHooksWhenIdle(): void {
  if (trackedProcesses.size === 0 && trackedDirs.size === 0) uninstallHooks();
}

/**
 * Starts a detached `sh` loop that SIGKILLs the child's process group once this Node process is
 * gone. It exits by itself as soon as the child is gone. It never keeps the event loop alive.
 */
function startWatchdog(childPid: number, groupLeader: boolean): void {
  const target = groupLeader ? `-${childPid}` : `${childPid}`;
  const script =
    `${SH_ALIVE_FUNCTION}; ` +
    `while alive ${hostProcess.pid}; do alive ${childPid} || exit 0; sleep 1; done; ` +
    `kill -KILL ${target} 2>/dev/null; exit 0`;
  try {
    const watchdog = spawn('sh', ['-c', script], { stdio: 'ignore', detached: true });
    watchdog.on('error', () => undefined);
    watchdog.unref();
  } catch {
    // the watchdog is a safety net only
  }
}

export function trackProcess(pid: number, name: string, groupLeader: boolean): void {
  installHooks();
  trackedProcesses.set(pid, { pid, name, groupLeader });
  startWatchdog(pid, groupLeader);
}

export function untrackProcess(pid: number): void {
  trackedProcesses.delete(pid);
  uninstallHooksWhenIdle();
}

export function trackDir(dir: string): void {
  installHooks();
  trackedDirs.add(dir);
}

export function untrackDir(dir: string): void {
  trackedDirs.delete(dir);
  uninstallHooksWhenIdle();
}

/** Names and pids of the children still registered (for diagnostics and tests). */
export function trackedProcessList(): ReadonlyArray<{ pid: number; name: string }> {
  return [...trackedProcesses.values()].map(({ pid, name }) => ({ pid, name }));
}

export function trackedDirList(): readonly string[] {
  return [...trackedDirs];
}
