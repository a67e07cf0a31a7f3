import { accessSync, constants, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { StartedNatsContainer } from '@testcontainers/nats';
import { dockerAvailable } from './docker';
import { freePort } from './free-port';
import { defaultNatsFsync, fsyncMechanism, makeDirectorySynchronous, natsServerConfig, natsServerVersion, type FsyncMechanism, type NatsFsync } from './nats-fsync';
import { startProcess, type ProcessHandle } from './process';
import { repositoryRoot } from './services';
import { tempDir, type TempDirHandle } from './temp-dir';

export interface StartNatsOptions {
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /**
   * When the server forces JetStream writes to disk (ADR 0014). Default: TOLLSTREAM_NATS_FSYNC, else
   * deploy/local/nats.json. `always` needs a harness-owned local nats-server.
   */
  fsync?: NatsFsync;
}

export type NatsSource = 'env' | 'container' | 'local-binary';

export interface NatsHandle {
  /** `nats://host:port`, no credentials needed. */
  readonly url: string;
  readonly source: NatsSource;
  /** Stops the server for good and removes its store (no-op for 'env'). Idempotent. */
  stop(): Promise<void>;
  /** Graceful stop, then start again on the same port with the same store (data survives). Not for 'env'. */
  restart(): Promise<void>;
  /** SIGKILL the server (crash tests). 'local-binary' only. */
  kill(): Promise<void>;
  /** Start again after kill(), same port and store. 'local-binary' only; no-op when running. */
  start(): Promise<void>;
  /** The fsync setting the server runs with; undefined for a server the harness does not own ('env'). */
  readonly fsync: NatsFsync | undefined;
  /** The server process while it runs ('local-binary' only), e.g. to read its CPU time. */
  readonly pid: number | undefined;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const DEFAULT_NATS_IMAGE = 'nats:2.9-alpine';
const INSTALL_HINT =
  'install it with `apt-get update && apt-get install -y nats-server` (Debian/Ubuntu), or set NATS_URL ' +
  'to an existing server, or set NATS_SERVER_BIN to the binary';

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Connects, and when asked checks that JetStream answers; throws otherwise. Always closes the connection. */
async function probeServer(url: string, jetstream: boolean): Promise<void> {
  const nc = await connect({ servers: url, timeout: 1_000, reconnect: false, name: 'tollstream-harness-probe' });
  try {
    if (jetstream) {
      const jsm = await jetstreamManager(nc, { timeout: 2_000 });
      await jsm.getAccountInfo();
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** Probes until the server answers or the deadline / the `gaveUp` check ends it. */
async function waitUntilServing(
  url: string,
  jetstream: boolean,
  deadline: number,
  gaveUp: () => string | undefined,
): Promise<void> {
  let lastError = 'no attempt made';
  for (;;) {
    const reason = gaveUp();
    if (reason) throw new Error(reason);
    try {
      await probeServer(url, jetstream);
      return;
    } catch (error) {
      lastError = errorMessage(error);
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `NATS at ${url} did not become ready within ${READY_TIMEOUT_MS} ms` +
          `${jetstream ? ' (connect + JetStream account info)' : ''}; last error: ${lastError}`,
      );
    }
    await sleep(100);
  }
}

/** Finds the nats-server binary: NATS_SERVER_BIN, then PATH, then the Debian location (/usr/sbin). */
export function findNatsServerBinary(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['NATS_SERVER_BIN'];
  if (explicit) {
    try {
      accessSync(explicit, constants.X_OK);
      return explicit;
    } catch {
      throw new Error(`NATS_SERVER_BIN=${explicit} is not an executable file; ${INSTALL_HINT}`);
    }
  }
  const dirs = [...(env['PATH'] ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new Error(
    `nats-server was not found on PATH (${env['PATH'] ?? ''}) nor in /usr/sbin and no Docker engine is reachable; ${INSTALL_HINT}`,
  );
}

/** A nats-server child process on a fixed port and store dir, which can be stopped/killed and started again. */
class LocalNatsServer implements NatsHandle {
  readonly source = 'local-binary' as const;
  private process: ProcessHandle | undefined;
  private stopped = false;
  private transition: Promise<void> = Promise.resolve();

  private constructor(
    private readonly binary: string,
    private port: number,
    private readonly store: TempDirHandle,
    private readonly jetstream: boolean,
    readonly fsync: NatsFsync,
    private readonly mechanism: FsyncMechanism,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  static async create(jetstream: boolean, fsync: NatsFsync): Promise<LocalNatsServer> {
    const binary = findNatsServerBinary();
    // Only "always" depends on the version (a broken binary then fails on its first start, with its output).
    const mechanism = jetstream && fsync === 'always' ? fsyncMechanism(fsync, natsServerVersion(binary)) : 'none';
    const store = await tempDir('nats');
    const server = new LocalNatsServer(binary, await freePort(), store, jetstream, fsync, mechanism);
    try {
      if (mechanism === 'sync-directory') makeDirectorySynchronous(store.path);
      // The free port can be taken between our probe and the server's bind: retry on a new port.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await server.launch();
          return server;
        } catch (error) {
          if (attempt >= 3 || !/address already in use/i.test(errorMessage(error))) throw error;
          server.port = await freePort();
        }
      }
    } catch (error) {
      await store.remove().catch(() => undefined);
      throw error;
    }
  }

  /** Written before every launch (the port can change before the first one succeeds). */
  private args(): string[] {
    const configFile = join(this.store.path, 'nats-server.conf');
    const storeDir = this.jetstream ? this.store.path : undefined;
    writeFileSync(configFile, natsServerConfig({ host: '127.0.0.1', port: this.port, storeDir, mechanism: this.mechanism }));
    return ['-c', configFile];
  }

  private async launch(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const child = await startProcess({
      command: this.binary,
      args: this.args(),
      name: `nats-server :${this.port}`,
      readyLine: /Server is ready/,
      readyTimeoutMs: READY_TIMEOUT_MS,
      keepsParentAlive: false,
    });
    let exitCode: number | null | undefined;
    void child.exited.then((code) => {
      exitCode = code;
    });
    try {
      await waitUntilServing(this.url, this.jetstream, deadline, () =>
        exitCode === undefined ? undefined : `nats-server exited with code ${String(exitCode)} while starting`,
      );
    } catch (error) {
      await child.kill('SIGKILL');
      throw new Error(`${errorMessage(error)}\nnats-server output:\n${child.output()}`, { cause: error });
    }
    this.process = child;
  }

  private async terminate(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child) return;
    if (signal === 'SIGKILL') {
      await child.kill('SIGKILL');
      return;
    }
    const timer = setTimeout(() => void child.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      await child.kill('SIGTERM');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Serialises lifecycle operations so that concurrent calls cannot interleave. */
  private serialised(operation: () => Promise<void>): Promise<void> {
    const next = this.transition.then(operation, operation);
    this.transition = next.catch(() => undefined);
    return next;
  }

  private assertUsable(action: string): void {
    if (this.stopped) throw new Error(`nats-server ${this.url}: cannot ${action} after stop() (its store is gone)`);
  }

  stop(): Promise<void> {
    return this.serialised(async () => {
      if (this.stopped) return;
      this.stopped = true;
      await this.terminate('SIGTERM');
      await this.store.remove();
    });
  }

  restart(): Promise<void> {
    return this.serialised(async () => {
      this.assertUsable('restart');
      await this.terminate('SIGTERM');
      await this.launch();
    });
  }

  kill(): Promise<void> {
    return this.serialised(async () => {
      this.assertUsable('kill');
      await this.terminate('SIGKILL');
    });
  }

  start(): Promise<void> {
    return this.serialised(async () => {
      this.assertUsable('start');
      if (this.process) return;
      await this.launch();
    });
  }
}

/**
 * `NatsContainer` from @testcontainers/nats always adds `--user test --pass test`, but nats.js v3
 * ignores credentials inside a URL and the harness hands out a plain URL. Drop those two flags so
 * the container behaves like the local binary (no auth).
 */
export function withoutDefaultCredentials(command: readonly string[]): string[] {
  const result: string[] = [];
  for (let index = 0; index < command.length; index += 1) {
    const arg = command[index];
    if (arg === '--user' || arg === '--pass') {
      index += 1; // skip its value too
      continue;
    }
    if (arg !== undefined) result.push(arg);
  }
  return result;
}

async function startNatsContainer(jetstream: boolean): Promise<NatsHandle> {
  const { NatsContainer } = await import('@testcontainers/nats');
  class UnauthenticatedNatsContainer extends NatsContainer {
    override withCommand(command: string[]): this {
      return super.withCommand(withoutDefaultCredentials(command));
    }
  }
  let definition = new UnauthenticatedNatsContainer(process.env['NATS_IMAGE'] ?? DEFAULT_NATS_IMAGE);
  if (jetstream) definition = definition.withJetStream();
  const container: StartedNatsContainer = await definition.start();
  const urlOf = (): string => `nats://${container.getHost()}:${container.getMappedPort(4222)}`;
  let stopped = false;
  const handle: NatsHandle = {
    source: 'container',
    get url(): string {
      return urlOf();
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await container.stop({ timeout: STOP_GRACE_MS });
    },
    async restart(): Promise<void> {
      // `docker restart` keeps the container's filesystem, hence the JetStream store. The mapped
      // host port can change: read `url` again afterwards.
      await container.restart({ timeout: STOP_GRACE_MS });
      await waitUntilServing(urlOf(), jetstream, Date.now() + READY_TIMEOUT_MS, () => undefined);
    },
    kill(): Promise<void> {
      return Promise.reject(new Error('NatsHandle.kill() is only supported for a local nats-server (source "local-binary")'));
    },
    start(): Promise<void> {
      return Promise.reject(new Error('NatsHandle.start() is only supported for a local nats-server (source "local-binary")'));
    },
    fsync: 'interval',
    pid: undefined,
  };
  try {
    await waitUntilServing(urlOf(), jetstream, Date.now() + READY_TIMEOUT_MS, () => undefined);
  } catch (error) {
    await handle.stop().catch(() => undefined);
    throw error;
  }
  return handle;
}

async function useNatsFromEnv(url: string, jetstream: boolean): Promise<NatsHandle> {
  try {
    await waitUntilServing(url, jetstream, Date.now() + 3_000, () => undefined);
  } catch (error) {
    throw new Error(`NATS_URL=${url} is set but not usable: ${errorMessage(error)}`, { cause: error });
  }
  const notOurs = (action: string): Promise<void> =>
    Promise.reject(
      new Error(`NatsHandle.${action}() is not possible: NATS comes from NATS_URL (${url}), the harness does not own that server`),
    );
  return {
    url,
    source: 'env',
    stop: () => Promise.resolve(),
    restart: () => notOurs('restart'),
    kill: () => notOurs('kill'),
    start: () => notOurs('start'),
    fsync: undefined,
    pid: undefined,
  };
}

/**
 * A NATS server for a test: `NATS_URL` if set, else a @testcontainers/nats container when a Docker
 * engine is reachable, else a local `nats-server` child (127.0.0.1, free port, temp store).
 * Resolves once a client can connect (and JetStream answers, unless `jetstream: false`).
 */
export async function startNats(options: StartNatsOptions = {}): Promise<NatsHandle> {
  const jetstream = options.jetstream ?? true;
  const fsync = options.fsync ?? defaultNatsFsync(repositoryRoot);
  const fromEnv = process.env['NATS_URL'];
  const docker = !fromEnv && (await dockerAvailable());
  if (fsync === 'always' && (fromEnv || docker)) {
    throw new Error(
      `fsync "always" needs a harness-owned local nats-server, not ${fromEnv ? `NATS_URL=${fromEnv}` : 'a container'}: ` +
        'unset NATS_URL / set TOLLSTREAM_DOCKER=0, or TOLLSTREAM_NATS_FSYNC=interval',
    );
  }
  if (fromEnv) return useNatsFromEnv(fromEnv, jetstream);
  if (docker) return startNatsContainer(jetstream);
  return LocalNatsServer.create(jetstream, fsync);
}
