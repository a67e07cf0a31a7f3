import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { trackedDirList, trackedProcessList } from './cleanup-registry';
import { dockerConfiguredSync } from './docker';
import { describeIf } from './conditional';
import { isPortFree } from './free-port';
import { tempDir } from './temp-dir';
import { findNatsServerBinary, startNats, withoutDefaultCredentials, type NatsHandle } from './nats';
import { hasSyncIntervalOption, natsServerConfig, natsServerVersion } from './nats-fsync';

type NatsConnection = Awaited<ReturnType<typeof connect>>;

/** These cases exercise the harness-owned nats-server; they do not apply when NATS_URL points elsewhere. */
const localBinary = !process.env['NATS_URL'] && !dockerConfiguredSync();
const describeLocal = (name: string, body: () => void) =>
  describeIf(localBinary, name, 'applies to the harness-owned nats-server only (NATS_URL is set or Docker is used)', body);

function portOf(url: string): number {
  return Number(new URL(url).port);
}

async function readLast(nc: NatsConnection, stream: string): Promise<string> {
  const jsm = await jetstreamManager(nc);
  const message = await jsm.streams.getMessage(stream, { last_by_subj: `${stream.toLowerCase()}.>` });
  return message ? message.string() : '<none>';
}

async function withConnection<T>(url: string, work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url });
  try {
    return await work(nc);
  } finally {
    await nc.close();
  }
}

describeLocal('startNats with the local nats-server binary', () => {
  let nats: NatsHandle;
  let storeDirs: string[];

  beforeAll(async () => {
    const before = new Set(trackedDirList());
    nats = await startNats();
    storeDirs = trackedDirList().filter((dir) => !before.has(dir));
  });

  afterAll(async () => {
    await nats.stop();
  });

  it('starts a JetStream-enabled server on 127.0.0.1', async () => {
    expect(nats.source).toBe('local-binary');
    expect(nats.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(storeDirs).toHaveLength(1);
    expect(trackedProcessList().some((tracked) => tracked.name === `nats-server :${portOf(nats.url)}`)).toBe(true);
    const info = await withConnection(nats.url, async (nc) => (await jetstreamManager(nc)).getAccountInfo());
    expect(info.streams).toBe(0);
  });

  it('keeps stream data across restart() on the same port', async () => {
    const portBefore = portOf(nats.url);
    await withConnection(nats.url, async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'HARNESS_RESTART', subjects: ['harness_restart.>'] });
      const ack = await jetstream(nc).publish('harness_restart.s1', 'toll 1', { msgID: 'tx-1' });
      expect(ack.seq).toBe(1);
    });

    await nats.restart();
    expect(portOf(nats.url)).toBe(portBefore);

    await withConnection(nats.url, async (nc) => {
      expect(await readLast(nc, 'HARNESS_RESTART')).toBe('toll 1');
      // the dedup window survived as well
      const ack = await jetstream(nc).publish('harness_restart.s1', 'toll 1', { msgID: 'tx-1' });
      expect(ack.duplicate).toBe(true);
    });
  });

  it('survives kill() (SIGKILL) + start() with the same port and store', async () => {
    const portBefore = portOf(nats.url);
    await withConnection(nats.url, async (nc) => {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'HARNESS_CRASH', subjects: ['harness_crash.>'] });
      await jetstream(nc).publish('harness_crash.s1', 'before the crash');
    });

    await nats.kill();
    await expect(withConnection(nats.url, () => Promise.resolve())).rejects.toThrow();

    await nats.start();
    expect(portOf(nats.url)).toBe(portBefore);
    await withConnection(nats.url, async (nc) => {
      expect(await readLast(nc, 'HARNESS_CRASH')).toBe('before the crash');
    });
    await expect(nats.start()).resolves.toBeUndefined(); // already running: no-op
  });

  it('stop() ends the server, frees the port and removes the store', async () => {
    const port = portOf(nats.url);
    const [store] = storeDirs;
    expect(store && existsSync(store)).toBe(true);

    await nats.stop();
    expect(store && existsSync(store)).toBe(false);
    await expect(isPortFree(port)).resolves.toBe(true);
    expect(trackedProcessList().some((tracked) => tracked.name === `nats-server :${port}`)).toBe(false);
    await expect(nats.stop()).resolves.toBeUndefined();
    await expect(nats.restart()).rejects.toThrow(/cannot restart after stop\(\)/);
  });
});

/** Every regular file under dir. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describeLocal('startNats({ fsync })', () => {
  it('knows from the version whether the binary accepts sync_interval (2.9 refuses it as an unknown field)', async () => {
    const binary = findNatsServerBinary();
    const dir = await tempDir('fsync-probe');
    try {
      const config = join(dir.path, 'probe.conf');
      writeFileSync(config, natsServerConfig({ host: '127.0.0.1', port: 4999, storeDir: dir.path, mechanism: 'config' }));
      const check = spawnSync(binary, ['-c', config, '-t'], { encoding: 'utf8', timeout: 5_000 });
      expect({ accepted: check.status === 0, output: check.stdout + check.stderr }).toEqual({
        accepted: hasSyncIntervalOption(natsServerVersion(binary)),
        output: hasSyncIntervalOption(natsServerVersion(binary)) ? expect.stringContaining('is valid') : expect.stringContaining('unknown field "sync_interval"'),
      });
    } finally {
      await dir.remove();
    }
  });

  it('"always": the stream files are written synchronously, and the data survives SIGKILL', async () => {
    const before = new Set(trackedDirList());
    const nats = await startNats({ fsync: 'always' });
    try {
      const [store] = trackedDirList().filter((dir) => !before.has(dir));
      expect(nats.fsync).toBe('always');
      expect(nats.pid).toEqual(expect.any(Number));
      await withConnection(nats.url, async (nc) => {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: 'HARNESS_FSYNC', subjects: ['harness_fsync.>'] });
        await jetstream(nc).publish('harness_fsync.s1', 'on disk');
      });
      const config = join(store ?? '', 'nats-server.conf');
      if (hasSyncIntervalOption(natsServerVersion(findNatsServerBinary()))) {
        expect(readFileSync(config, 'utf8')).toContain('sync_interval: always');
      } else {
        const blocks = filesUnder(join(store ?? '', 'jetstream')).filter((file) => file.includes('HARNESS_FSYNC') && file.endsWith('.blk'));
        expect(blocks.length).toBeGreaterThan(0);
        for (const block of blocks) expect(execFileSync('lsattr', [block], { encoding: 'utf8' }).split(/\s+/)[0]).toContain('S');
      }
      await nats.kill();
      expect(nats.pid).toBeUndefined();
      await nats.start();
      await withConnection(nats.url, async (nc) => expect(await readLast(nc, 'HARNESS_FSYNC')).toBe('on disk'));
    } finally {
      await nats.stop();
    }
  });

  it('"interval" adds nothing to the server default', async () => {
    const before = new Set(trackedDirList());
    const nats = await startNats({ fsync: 'interval' });
    try {
      const [store] = trackedDirList().filter((dir) => !before.has(dir));
      expect(nats.fsync).toBe('interval');
      expect(readFileSync(join(store ?? '', 'nats-server.conf'), 'utf8')).not.toContain('sync_interval');
      expect(execFileSync('lsattr', ['-d', store ?? ''], { encoding: 'utf8' }).split(/\s+/)[0]).not.toContain('S');
    } finally {
      await nats.stop();
    }
  });
});

describeLocal('startNats({ jetstream: false })', () => {
  it('starts a core-only server', async () => {
    const nats = await startNats({ jetstream: false });
    try {
      await withConnection(nats.url, async (nc) => {
        await expect(jetstreamManager(nc, { timeout: 1_000 })).rejects.toThrow();
      });
    } finally {
      await nats.stop();
    }
  });
});

describe('startNats with NATS_URL', () => {
  const previous = process.env['NATS_URL'];
  afterEach(() => {
    if (previous === undefined) delete process.env['NATS_URL'];
    else process.env['NATS_URL'] = previous;
  });

  it('uses the given server, stop() is a no-op and restart/kill/start are refused', async () => {
    if (!localBinary) return;
    const owned = await startNats();
    try {
      process.env['NATS_URL'] = owned.url;
      const fromEnv = await startNats();
      expect(fromEnv.source).toBe('env');
      expect(fromEnv.url).toBe(owned.url);
      await fromEnv.stop();
      await withConnection(owned.url, async (nc) => expect(nc.isClosed()).toBe(false));
      await expect(fromEnv.restart()).rejects.toThrow(/comes from NATS_URL .* does not own that server/);
      await expect(fromEnv.kill()).rejects.toThrow(/NATS_URL/);
      await expect(fromEnv.start()).rejects.toThrow(/NATS_URL/);
    } finally {
      await owned.stop();
    }
  });

  it('fails clearly when NATS_URL does not answer', async () => {
    process.env['NATS_URL'] = 'nats://127.0.0.1:1';
    await expect(startNats()).rejects.toThrow(/NATS_URL=nats:\/\/127\.0\.0\.1:1 is set but not usable/);
  }, 10_000);
});

describeLocal('startNats when nats-server cannot start', () => {
  it('rejects with the server output', async () => {
    const bin = await tempDir('fake-nats');
    const previous = process.env['NATS_SERVER_BIN'];
    try {
      const fake = join(bin.path, 'nats-server');
      writeFileSync(fake, '#!/bin/sh\necho "[FTL] Can not create storage directory: permission denied" >&2\nexit 1\n', { mode: 0o755 });
      process.env['NATS_SERVER_BIN'] = fake;
      const before = trackedDirList().length;
      await expect(startNats()).rejects.toThrow(/exited \(code 1, signal null\)[\s\S]*Can not create storage directory/);
      expect(trackedDirList()).toHaveLength(before); // its store dir is gone again
    } finally {
      if (previous === undefined) delete process.env['NATS_SERVER_BIN'];
      else process.env['NATS_SERVER_BIN'] = previous;
      await bin.remove();
    }
  });
});

describe('findNatsServerBinary', () => {
  it('finds the installed binary', () => {
    if (!localBinary) return;
    expect(findNatsServerBinary()).toMatch(/nats-server$/);
  });

  it('explains how to install nats-server when it is missing', () => {
    expect(() => findNatsServerBinary({ PATH: '/nonexistent', NATS_SERVER_BIN: '/nonexistent/nats-server' })).toThrow(
      /apt-get install -y nats-server/,
    );
  });
});

describe('withoutDefaultCredentials', () => {
  it('drops the --user/--pass pair @testcontainers/nats always adds', () => {
    expect(withoutDefaultCredentials(['--user', 'test', '--pass', 'test', '--jetstream'])).toEqual(['--jetstream']);
  });
});
