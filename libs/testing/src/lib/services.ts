import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './free-port';
import { startProcess, type ProcessHandle } from './process';

/** Root of the monorepo (this file is libs/testing/src/lib/services.ts). */
export const repositoryRoot = join(__dirname, '..', '..', '..', '..');

/** The local pipeline's memory budget (deploy/local/memory.json), as `npm start` applies it. */
export interface LocalMemoryBudget {
  /** Node flags per app (folder name under apps/). */
  nodeOptions: Record<string, string>;
  /** GOMEMLIMIT of nats-server. */
  natsServerGoMemoryLimit: string;
}

let memoryBudget: LocalMemoryBudget | undefined;

/** Read once per process (every service start asks for it). */
export function localMemoryBudget(): LocalMemoryBudget {
  if (memoryBudget) return memoryBudget;
  const budget = JSON.parse(readFileSync(join(repositoryRoot, 'deploy', 'local', 'memory.json'), 'utf8')) as Partial<LocalMemoryBudget>;
  if (typeof budget.natsServerGoMemoryLimit !== 'string' || typeof budget.nodeOptions !== 'object' || budget.nodeOptions === null) {
    throw new Error('deploy/local/memory.json: expected nodeOptions (object) and natsServerGoMemoryLimit (string)');
  }
  memoryBudget = { nodeOptions: budget.nodeOptions, natsServerGoMemoryLimit: budget.natsServerGoMemoryLimit };
  return memoryBudget;
}

/**
 * How a service under test runs: from source through tsx (default), or with
 * TOLLSTREAM_SERVICE_RUNTIME=built as in its image, the bundle of `nx build` (dist/apps/<app>/main.cjs;
 * tsx holds about 60 MiB more per process, which matters where memory is measured).
 */
function serviceEntryPoint(app: string): string[] {
  if (process.env['TOLLSTREAM_SERVICE_RUNTIME'] !== 'built') return ['--import', 'tsx', join(repositoryRoot, 'apps', app, 'src', 'main.ts')];
  const bundle = join(repositoryRoot, 'dist', 'apps', app, 'main.cjs');
  if (!existsSync(bundle)) throw new Error(`${bundle} does not exist: build it first (npx nx run-many -t build)`);
  return ['--enable-source-maps', bundle];
}

/**
 * Node flags of a service under test: TOLLSTREAM_SERVICE_NODE_ARGS for every service when set (e.g.
 * "--cpu-prof"); else, with TOLLSTREAM_SERVICE_MEMORY=local, the app's flags of the local memory budget.
 */
export function serviceNodeArgs(app: string): string[] {
  const explicit = process.env['TOLLSTREAM_SERVICE_NODE_ARGS'];
  const flags = explicit ?? (process.env['TOLLSTREAM_SERVICE_MEMORY'] === 'local' ? (localMemoryBudget().nodeOptions[app] ?? '') : '');
  return flags.split(' ').filter(Boolean);
}

export interface ServiceProcess {
  name: string;
  pid: number;
  grpcPort: number;
  httpPort: number;
  process: ProcessHandle;
  /** SIGTERM and wait (graceful shutdown). */
  stop(): Promise<number | null>;
  /** Any signal, e.g. SIGKILL for crash tests. */
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export interface StartServiceOptions {
  /** Folder name under apps/. */
  app: string;
  env: NodeJS.ProcessEnv;
  /** Env var names the app reads its ports from. */
  grpcPortVariable?: string;
  httpPortVariable: string;
  grpcPort?: number;
  httpPort?: number;
  readyTimeoutMs?: number;
}

/**
 * Runs one of the platform's services from source as its own process (node + tsx, no build step),
 * the way it runs in production: configured by environment only. Resolves when it logs "<app> ready".
 */
export async function startService(options: StartServiceOptions): Promise<ServiceProcess> {
  const grpcPort = options.grpcPort ?? (options.grpcPortVariable ? await freePort() : 0);
  const httpPort = options.httpPort ?? (await freePort());
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env, [options.httpPortVariable]: String(httpPort) };
  if (options.grpcPortVariable) env[options.grpcPortVariable] = String(grpcPort);
  const handle = await startProcess({
    name: options.app,
    command: process.execPath,
    args: [...serviceNodeArgs(options.app), ...serviceEntryPoint(options.app)],
    cwd: repositoryRoot,
    env,
    readyLine: new RegExp(`"msg":"${options.app} ready"`),
    readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
  });
  return {
    name: options.app,
    pid: handle.pid,
    grpcPort,
    httpPort,
    process: handle,
    stop: () => handle.kill('SIGTERM'),
    kill: (signal) => handle.kill(signal),
  };
}

export interface StartIngestorOptions {
  natsUrl: string;
  credentialsFile: string;
  grpcPort?: number;
  env?: NodeJS.ProcessEnv;
}

export function startIngestor(options: StartIngestorOptions): Promise<ServiceProcess> {
  return startService({
    app: 'ingestor',
    grpcPortVariable: 'INGEST_GRPC_PORT',
    httpPortVariable: 'INGEST_HTTP_PORT',
    grpcPort: options.grpcPort,
    env: {
      NATS_URL: options.natsUrl,
      INGEST_GRPC_HOST: '127.0.0.1',
      INGEST_STATION_CREDENTIALS_FILE: options.credentialsFile,
      LOG_LEVEL: 'info',
      ...options.env,
    },
  });
}

export interface StartWindowerOptions {
  natsUrl: string;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export function startWindower(options: StartWindowerOptions): Promise<ServiceProcess> {
  return startService({
    app: 'windower',
    httpPortVariable: 'WINDOWER_HTTP_PORT',
    readyTimeoutMs: options.readyTimeoutMs,
    env: { NATS_URL: options.natsUrl, LOG_LEVEL: 'info', ...options.env },
  });
}
