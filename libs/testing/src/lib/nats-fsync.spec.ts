import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultNatsFsync, fsyncMechanism, hasSyncIntervalOption, natsServerConfig, parseNatsFsync, parseNatsServerVersion } from './nats-fsync';
import { repositoryRoot } from './services';
import { tempDir } from './temp-dir';

describe('parseNatsServerVersion', () => {
  it('reads the Debian package output and a bare version', () => {
    expect(parseNatsServerVersion('nats-server: v2.9.10\n')).toEqual({ major: 2, minor: 9, patch: 10 });
    expect(parseNatsServerVersion('2.10.0')).toEqual({ major: 2, minor: 10, patch: 0 });
  });

  it('says what it could not read', () => {
    expect(() => parseNatsServerVersion('nats-server: unknown')).toThrow(/cannot read a nats-server version from "nats-server: unknown"/);
  });
});

describe('fsync mechanism per server version', () => {
  it('uses sync_interval from 2.10 on and the synchronous store directory before', () => {
    expect(hasSyncIntervalOption({ major: 2, minor: 9, patch: 10 })).toBe(false);
    expect(hasSyncIntervalOption({ major: 2, minor: 10, patch: 0 })).toBe(true);
    expect(hasSyncIntervalOption({ major: 3, minor: 0, patch: 0 })).toBe(true);
    expect(fsyncMechanism('always', { major: 2, minor: 9, patch: 10 })).toBe('sync-directory');
    expect(fsyncMechanism('always', { major: 2, minor: 12, patch: 1 })).toBe('config');
    expect(fsyncMechanism('interval', { major: 2, minor: 12, patch: 1 })).toBe('none');
  });
});

describe('natsServerConfig', () => {
  it('writes sync_interval only when the server has it', () => {
    const withOption = natsServerConfig({ host: '127.0.0.1', port: 4333, storeDir: '/tmp/a b', mechanism: 'config' });
    expect(withOption).toBe('listen: "127.0.0.1:4333"\njetstream {\n  store_dir: "/tmp/a b"\n  sync_interval: always\n}\n');
    expect(natsServerConfig({ host: '127.0.0.1', port: 4333, storeDir: '/tmp/s', mechanism: 'sync-directory' })).not.toContain('sync_interval');
    expect(natsServerConfig({ host: '127.0.0.1', port: 4333, mechanism: 'none' })).toBe('listen: "127.0.0.1:4333"\n');
  });
});

describe('parseNatsFsync and the default', () => {
  it('accepts the two settings and names the source of a bad value', () => {
    expect(parseNatsFsync('always', 'X')).toBe('always');
    expect(() => parseNatsFsync('sometimes', 'TOLLSTREAM_NATS_FSYNC')).toThrow('TOLLSTREAM_NATS_FSYNC: expected one of interval, always, got "sometimes"');
  });

  it('takes TOLLSTREAM_NATS_FSYNC over deploy/local/nats.json', async () => {
    const dir = await tempDir('fsync-default');
    try {
      mkdirSync(join(dir.path, 'deploy', 'local'), { recursive: true });
      writeFileSync(join(dir.path, 'deploy', 'local', 'nats.json'), JSON.stringify({ fsync: 'always' }));
      expect(defaultNatsFsync(dir.path, {})).toBe('always');
      expect(defaultNatsFsync(dir.path, { TOLLSTREAM_NATS_FSYNC: 'interval' })).toBe('interval');
      writeFileSync(join(dir.path, 'deploy', 'local', 'nats.json'), JSON.stringify({ fsync: 'never' }));
      expect(() => defaultNatsFsync(dir.path, {})).toThrow(/nats\.json fsync: expected one of interval, always, got "never"/);
    } finally {
      await dir.remove();
    }
  });

  it('the repository has a valid local default', () => {
    expect(['interval', 'always']).toContain(defaultNatsFsync(repositoryRoot, {}));
  });
});
