import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * When nats-server forces JetStream writes to disk (ADR 0014):
 * - `interval`: the server's default: a write reaches the OS page cache before the publish is
 *   acknowledged and is fsynced later (every 2 minutes; fixed in 2.9, `sync_interval` from 2.10).
 * - `always`: every write is on disk before the publish is acknowledged (`sync_interval: always`,
 *   nats-server 2.10 and later).
 */
export type NatsFsync = 'interval' | 'always';

export const NATS_FSYNC_VALUES: readonly NatsFsync[] = ['interval', 'always'];

export interface NatsServerVersion {
  major: number;
  minor: number;
  patch: number;
}

/** Parses `nats-server --version` output (`nats-server: v2.9.10`). */
export function parseNatsServerVersion(output: string): NatsServerVersion {
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(output);
  if (!match) throw new Error(`cannot read a nats-server version from ${JSON.stringify(output.slice(0, 200))}`);
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]) };
}

/** `sync_interval` (with `always`) exists in the jetstream block from nats-server 2.10.0 on; 2.9 refuses it as an unknown field. */
export function hasSyncIntervalOption(version: NatsServerVersion): boolean {
  return version.major > 2 || (version.major === 2 && version.minor >= 10);
}

export function parseNatsFsync(value: string, source: string): NatsFsync {
  if ((NATS_FSYNC_VALUES as readonly string[]).includes(value)) return value as NatsFsync;
  throw new Error(`${source}: expected one of ${NATS_FSYNC_VALUES.join(', ')}, got ${JSON.stringify(value)}`);
}

/**
 * How a local nats-server applies a setting:
 * - `config`: `sync_interval: always` in its jetstream block (2.10+);
 * - `sync-directory`: 2.9 has no such option, so the store directory gets the file system's
 *   synchronous-updates attribute (`chattr +S`, ext4/xfs): every write() of the server is on disk
 *   before it returns, which is what `always` does with O_SYNC from 2.10 on;
 * - `none`: the server's default.
 */
export type FsyncMechanism = 'config' | 'sync-directory' | 'none';

export function fsyncMechanism(fsync: NatsFsync, version: NatsServerVersion): FsyncMechanism {
  if (fsync === 'interval') return 'none';
  return hasSyncIntervalOption(version) ? 'config' : 'sync-directory';
}

export interface NatsServerConfigOptions {
  host: string;
  port: number;
  /** Undefined: JetStream off. */
  storeDir?: string;
  mechanism: FsyncMechanism;
}

/** The config file text of a local nats-server (JSON strings are valid in the NATS config syntax). */
export function natsServerConfig(options: NatsServerConfigOptions): string {
  const lines = [`listen: ${JSON.stringify(`${options.host}:${options.port}`)}`];
  if (options.storeDir !== undefined) {
    lines.push('jetstream {', `  store_dir: ${JSON.stringify(options.storeDir)}`);
    if (options.mechanism === 'config') lines.push('  sync_interval: always');
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

const versions = new Map<string, NatsServerVersion>();

/** The version of a nats-server binary (asked once per binary and process). */
export function natsServerVersion(binary: string): NatsServerVersion {
  const known = versions.get(binary);
  if (known) return known;
  const version = parseNatsServerVersion(execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 5_000 }));
  versions.set(binary, version);
  return version;
}

/**
 * Makes every file later created under `dir` synchronous (chattr +S is inherited by new files and
 * directories) and checks that the attribute took; throws with the reason otherwise (a file system
 * without the attribute, e.g. tmpfs or overlayfs, or no chattr).
 */
export function makeDirectorySynchronous(dir: string): void {
  try {
    execFileSync('chattr', ['+S', dir], { stdio: 'pipe', timeout: 5_000 });
    const attributes = execFileSync('lsattr', ['-d', dir], { encoding: 'utf8', timeout: 5_000 }).split(/\s+/)[0] ?? '';
    if (!attributes.includes('S')) throw new Error(`lsattr shows ${attributes}`);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `fsync "always" on a nats-server without sync_interval (2.9) needs the synchronous-updates attribute on its store ` +
        `(chattr +S ${dir}), which failed: ${reason.trim()}. Use nats-server 2.10+ (sync_interval: always) or a store on ext4/xfs.`,
      { cause: error },
    );
  }
}

/**
 * The fsync setting of harness-owned servers when a test does not choose: TOLLSTREAM_NATS_FSYNC, else
 * the local default in deploy/local/nats.json (the same file `npm start` reads).
 */
export function defaultNatsFsync(repositoryRoot: string, env: NodeJS.ProcessEnv = process.env): NatsFsync {
  const fromEnv = env['TOLLSTREAM_NATS_FSYNC'];
  if (fromEnv) return parseNatsFsync(fromEnv, 'TOLLSTREAM_NATS_FSYNC');
  const file = join(repositoryRoot, 'deploy', 'local', 'nats.json');
  const local = JSON.parse(readFileSync(file, 'utf8')) as { fsync?: unknown };
  return parseNatsFsync(String(local.fsync), `${file} fsync`);
}
