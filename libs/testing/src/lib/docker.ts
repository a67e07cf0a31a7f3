import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';

const DETECTION_TIMEOUT_MS = 2_500;

let cachedDetection: Promise<boolean> | undefined;

function candidateSocketPaths(): string[] {
  const paths = ['/var/run/docker.sock'];
  const xdgRuntimeDir = process.env['XDG_RUNTIME_DIR'];
  if (xdgRuntimeDir) paths.push(join(xdgRuntimeDir, 'docker.sock'));
  try {
    const home = homedir();
    paths.push(join(home, '.docker', 'run', 'docker.sock'), join(home, '.docker', 'desktop', 'docker.sock'));
    paths.push(join('/run', 'user', String(userInfo().uid), 'docker.sock'));
  } catch {
    // no home dir / user info: only the well-known paths
  }
  return paths;
}

/**
 * Synchronous, I/O-light hint: could a Docker engine be configured here at all?
 * (DOCKER_HOST, a testcontainers config file, or one of the sockets testcontainers probes.)
 * `false` is definitive; `true` still needs {@link dockerAvailable} to ping the engine.
 */
export function dockerConfiguredSync(): boolean {
  if (dockerDisabledByEnv()) return false;
  if (process.env['DOCKER_HOST']) return true;
  if (process.platform === 'win32') return true;
  try {
    if (existsSync(join(homedir(), '.testcontainers.properties'))) return true;
  } catch {
    // ignore
  }
  return candidateSocketPaths().some((path) => existsSync(path));
}

function dockerDisabledByEnv(): boolean {
  const forced = process.env['TOLLSTREAM_DOCKER'];
  return forced === '0' || forced === 'false';
}

async function pingEngine(): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), DETECTION_TIMEOUT_MS);
    timer.unref();
  });
  const probe = (async (): Promise<boolean> => {
    // Loaded lazily: testcontainers is heavy and not needed at all on a machine without Docker.
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  })().catch(() => false);
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/**
 * Is a Docker (or compatible) engine reachable? Cached per process (per jest module registry),
 * answers in under 3 s and never hangs: no socket/config → `false` at once; otherwise
 * testcontainers' own runtime detection (which pings the engine), raced against a 2.5 s timeout.
 * `TOLLSTREAM_DOCKER=0` forces `false` (e.g. to exercise the local fallbacks on a Docker host).
 */
export function dockerAvailable(): Promise<boolean> {
  if (!cachedDetection) {
    if (!dockerConfiguredSync()) cachedDetection = Promise.resolve(false);
    else cachedDetection = pingEngine();
  }
  return cachedDetection;
}

/** Test hook: forget the cached detection result. */
export function resetDockerDetectionCache(): void {
  cachedDetection = undefined;
}
