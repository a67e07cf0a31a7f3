import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { signalTracked, trackProcess, untrackProcess } from './cleanup-registry';

export interface StartProcessOptions {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Used in error messages and diagnostics. */
  name: string;
  /** Resolve only once a stdout/stderr line matches this. */
  readyLine?: RegExp;
  /** How long to wait for `readyLine` (default 30 000 ms). */
  readyTimeoutMs?: number;
  /**
   * Whether the child keeps this Node process alive (default true, like `spawn`). With false, a
   * forgotten child does not stop Node (or jest) from exiting; it is then killed by the exit
   * cleanup. The harness uses false for servers it owns (nats-server).
   */
  keepsParentAlive?: boolean;
}

export interface ProcessHandle {
  readonly pid: number;
  /**
   * Sends `signal` (default SIGTERM) and resolves with the exit code once the process has ended
   * (`null` when it was ended by a signal). SIGKILL goes to the whole process group (so
   * `npx tsx …` leaves no grandchildren); other signals go to the process itself, which is
   * expected to forward them (npx and tsx do). If it is still alive 10 s after the signal,
   * the group is SIGKILLed. Leftover group members are always SIGKILLed after the exit.
   */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code (`null` when ended by a signal) once the process has ended. */
  readonly exited: Promise<number | null>;
  /** The signal that ended the process, once it has ended by one; otherwise null. */
  exitSignal(): NodeJS.Signals | null;
  /** The last ~200 lines of stdout and stderr, interleaved in arrival order. */
  output(): string;
}

const KEPT_LINES = 200;
const KILL_ESCALATION_MS = 10_000;

class OutputTail {
  private readonly lines: string[] = [];
  private readonly partial = new Map<string, string>();

  constructor(private readonly onLine: (line: string) => void) {}

  push(stream: 'stdout' | 'stderr', chunk: string): void {
    const text = (this.partial.get(stream) ?? '') + chunk;
    const pieces = text.split(/\r?\n/);
    this.partial.set(stream, pieces.pop() ?? '');
    for (const line of pieces) this.add(line);
  }

  flush(): void {
    for (const [stream, rest] of this.partial) {
      if (rest.length > 0) this.add(rest);
      this.partial.set(stream, '');
    }
  }

  text(): string {
    const pending = [...this.partial.values()].filter((rest) => rest.length > 0);
    return [...this.lines, ...pending].join('\n');
  }

  private add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > KEPT_LINES) this.lines.splice(0, this.lines.length - KEPT_LINES);
    this.onLine(line);
  }
}

function indent(text: string): string {
  return text.length === 0 ? '  (no output)' : text.replace(/^/gm, '  | ');
}

/**
 * Spawns a child process in its own process group, captures the tail of its output and, when
 * `readyLine` is given, resolves only once a line matches (rejecting with the captured output on
 * timeout or early exit; the process is SIGKILLed in that case). Registered for cleanup on exit.
 */
export async function startProcess(options: StartProcessOptions): Promise<ProcessHandle> {
  const { command, args, name, readyLine } = options;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const commandLine = [command, ...args].join(' ');

  let readyResolve: (() => void) | undefined;
  const ready = new Promise<void>((resolve) => {
    readyResolve = resolve;
  });
  const tail = new OutputTail((line) => {
    if (readyLine && readyResolve) {
      readyLine.lastIndex = 0;
      if (readyLine.test(line)) {
        readyResolve();
        readyResolve = undefined;
      }
    }
  });

  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => tail.push('stdout', chunk));
  child.stderr.on('data', (chunk: string) => tail.push('stderr', chunk));

  if (options.keepsParentAlive === false) {
    child.unref();
    for (const stream of [child.stdout, child.stderr]) if (stream instanceof Socket) stream.unref();
  }

  const spawned = new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid ?? -1));
    child.once('error', (error) =>
      reject(new Error(`${name}: could not start \`${commandLine}\`: ${error.message}`, { cause: error })),
    );
  });
  const pid = await spawned;
  trackProcess(pid, name, true);

  let endedBySignal: NodeJS.Signals | null = null;
  let hasExited = false;
  const streamsClosed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      endedBySignal = signal;
      // Whatever the leader left behind in its group goes too (it could hold the pipes open).
      signalTracked(pid, 'SIGKILL', true);
      untrackProcess(pid);
      // Let the last buffered output arrive, but never wait long for it.
      const grace = new Promise<void>((done) => setTimeout(done, 1_000).unref());
      void Promise.race([streamsClosed, grace]).then(() => {
        tail.flush();
        resolve(code);
      });
    });
  });

  const handle: ProcessHandle = {
    pid,
    exited,
    output: () => tail.text(),
    exitSignal: () => endedBySignal,
    async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (hasExited) return exited;
      signalTracked(pid, signal, signal === 'SIGKILL');
      const escalation = setTimeout(() => signalTracked(pid, 'SIGKILL', true), KILL_ESCALATION_MS);
      escalation.unref();
      try {
        return await exited;
      } finally {
        clearTimeout(escalation);
      }
    },
  };

  if (!readyLine) return handle;

  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), readyTimeoutMs);
    }),
  ]);
  if (timer) clearTimeout(timer);
  if (outcome === 'ready') return handle;

  if (outcome === 'timeout') {
    await handle.kill('SIGKILL');
    throw new Error(
      `${name}: no line matching ${String(readyLine)} within ${readyTimeoutMs} ms from \`${commandLine}\` ` +
        `(pid ${pid}, killed). Last output:\n${indent(tail.text())}`,
    );
  }
  const code = await exited;
  throw new Error(
    `${name}: \`${commandLine}\` exited (code ${String(code)}, signal ${String(endedBySignal)}) before printing ` +
      `a line matching ${String(readyLine)}. Last output:\n${indent(tail.text())}`,
  );
}
