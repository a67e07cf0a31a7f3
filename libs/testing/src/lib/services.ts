import { join } from 'node:path';
import { freePort } from './free-port';
import { startProcess, type ProcessHandle } from './process';

/** Root of the monorepo (this file is libs/testing/src/lib/services.ts). */
export const repositoryRoot = join(__dirname, '..', '..', '..', '..');

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
    // TOLLSTREAM_SERVICE_NODE_ARGS: extra node flags for services under test, e.g. "--cpu-prof".
    args: [...(process.env['TOLLSTREAM_SERVICE_NODE_ARGS']?.split(' ').filter(Boolean) ?? []), '--import', 'tsx', join(repositoryRoot, 'apps', options.app, 'src', 'main.ts')],
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
