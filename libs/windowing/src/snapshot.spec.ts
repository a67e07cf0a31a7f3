import { SnapshotError } from './snapshot-codec';
import type { WindowEngineOptions } from './types';
import { WindowEngine } from './window-engine';

const options: WindowEngineOptions = {
  window: { kind: 'tumbling', sizeMs: 1000 },
  outOfOrdernessMs: 0,
  allowedLatenessMs: 5000,
  idleTimeoutMs: 1000,
  subKeyCount: 2,
};

function engineWithWindows(keys: number, opts: WindowEngineOptions = options): WindowEngine {
  const engine = new WindowEngine(opts);
  for (let i = 0; i < keys; i++) engine.add({ key: `plaza-${i}`, eventTimeMs: 10_000 + (i % 3) * 1000, value: i * 0.5, subKey: i % 2 });
  return engine;
}

const concat = (chunks: Uint8Array[]): Uint8Array => {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
};

describe('WindowEngine snapshots', () => {
  it('cuts the stream into chunks no larger than asked, 256 KiB by default', () => {
    const engine = engineWithWindows(20_000);
    const small = [...engine.snapshotChunks(1024)];
    expect(small.length).toBeGreaterThan(100);
    expect(Math.max(...small.map((c) => c.length))).toBeLessThanOrEqual(1024);
    const byDefault = [...engine.snapshotChunks()];
    expect(byDefault.length).toBeGreaterThan(1);
    expect(Math.max(...byDefault.map((c) => c.length))).toBeLessThanOrEqual(256 * 1024);
    expect(Buffer.compare(concat(byDefault), concat(small))).toBe(0); // same bytes either way
    expect(concat(small).length / 20_000).toBeLessThan(48); // compact: bytes per window, 11-byte key and 3 doubles included
  });

  it('gives an entry larger than the chunk size a chunk of its own', () => {
    const engine = new WindowEngine(options);
    engine.add({ key: 'x'.repeat(5000), eventTimeMs: 0, value: 1 });
    engine.add({ key: 'short', eventTimeMs: 0, value: 1 });
    const chunks = [...engine.snapshotChunks(200)];
    expect(chunks.filter((c) => c.length > 200)).toHaveLength(1 + 0);
    expect(chunks.find((c) => c.length > 200)?.length).toBeLessThan(5100);
    expect(WindowEngine.restore(options, chunks).openWindowCount).toBe(2);
  });

  it('restores exactly: the same results afterwards, with each key keeping the zone it was aligned in', () => {
    const zoned: WindowEngineOptions = {
      window: { kind: 'tumbling', sizeMs: 3_600_000 },
      timeZoneOfKey: () => 'Asia/Kathmandu',
      outOfOrdernessMs: 0,
      allowedLatenessMs: 3_600_000,
      idleTimeoutMs: 1000,
    };
    const t = Date.parse('2024-05-01T10:00:00Z');
    const engine = new WindowEngine(zoned);
    engine.add({ key: 'a', eventTimeMs: t, value: 1 });
    engine.add({ key: 'b', eventTimeMs: t + 3_600_000, value: 1 });
    engine.takeResults();
    engine.add({ key: 'a', eventTimeMs: t + 1, value: 2 }); // pending amendment
    const restored = WindowEngine.restore({ ...zoned, timeZoneOfKey: () => 'UTC' }, engine.snapshotChunks(16));
    const expected = engine.takeResults();
    expect(expected.map((r) => [r.key, r.timeZone, r.revision])).toEqual([['a', 'Asia/Kathmandu', 2]]);
    expect(restored.takeResults()).toEqual(expected);
  });

  it('restores an empty engine', () => {
    const engine = new WindowEngine(options);
    const restored = WindowEngine.restore(options, engine.snapshotChunks());
    expect([restored.watermarkMs, restored.openWindowCount, restored.lateRecordCount]).toEqual([Number.MIN_SAFE_INTEGER, 0, 0]);
    expect(restored.add({ key: 'a', eventTimeMs: 0, value: 1 })).toBe('applied');
  });

  it('detects any corrupted byte', () => {
    const sessions: WindowEngineOptions = { ...options, window: { kind: 'session', gapMs: 100 } };
    const engine = new WindowEngine(sessions);
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'b', eventTimeMs: 1100, value: 2 });
    engine.takeResults();
    engine.add({ key: 'a', eventTimeMs: 1050, value: 3 }); // a retraction and a pending window in the state
    const bytes = concat([...engine.snapshotChunks()]);
    for (let i = 0; i < bytes.length; i++) {
      const corrupted = bytes.slice();
      corrupted[i] ^= 0x10;
      expect(() => WindowEngine.restore(sessions, [corrupted])).toThrow(SnapshotError);
    }
    expect(WindowEngine.restore(sessions, [bytes]).takeResults()).toEqual(engine.takeResults());
  });

  it('detects truncated input, and data after the end', () => {
    const bytes = concat([...engineWithWindows(30).snapshotChunks()]);
    for (let n = 0; n < bytes.length; n++) {
      expect(() => WindowEngine.restore(options, [bytes.subarray(0, n)])).toThrow(SnapshotError);
    }
    expect(() => WindowEngine.restore(options, [bytes.subarray(0, 40)])).toThrow('Truncated window engine snapshot');
    expect(() => WindowEngine.restore(options, [bytes, new Uint8Array([0])])).toThrow('data after the end');
  });

  it('refuses another format version, foreign bytes, and other options', () => {
    const bytes = concat([...engineWithWindows(3).snapshotChunks()]);
    const otherVersion = bytes.slice();
    otherVersion[4] = 2;
    expect(() => WindowEngine.restore(options, [otherVersion])).toThrow('Window engine snapshot format version 2 is not supported (this engine reads version 1)');
    expect(() => WindowEngine.restore(options, [new TextEncoder().encode('{"json":true}')])).toThrow('Not a window engine snapshot');
    expect(() => WindowEngine.restore({ ...options, allowedLatenessMs: 1 }, [bytes])).toThrow('taken with other window options');
    expect(() => WindowEngine.restore({ ...options, window: { kind: 'tumbling', sizeMs: 1000, timeZone: 'Europe/Paris' } }, [bytes])).toThrow(
      'taken with other window options',
    );
  });

  it('refuses changes while a snapshot is being streamed, and accepts them once it is done or abandoned', () => {
    const engine = engineWithWindows(2000);
    const chunks = engine.snapshotChunks(256);
    chunks.next();
    expect(() => engine.add({ key: 'a', eventTimeMs: 0, value: 1 })).toThrow('being snapshotted');
    expect(() => engine.takeResults()).toThrow('being snapshotted');
    expect(() => engine.advanceLogTime(0, true)).toThrow('being snapshotted');
    chunks.return(undefined);
    expect(engine.add({ key: 'a', eventTimeMs: 10_000, value: 1 })).toBe('applied');
    for (const chunk of engine.snapshotChunks(256)) {
      expect(chunk.length).toBeGreaterThan(0);
      break; // a for-of break returns the generator too
    }
    expect(engine.add({ key: 'a', eventTimeMs: 10_000, value: 1 })).toBe('applied');
  });

  it('rejects a bad chunk size', () => {
    expect(() => engineWithWindows(1).snapshotChunks(0).next()).toThrow(RangeError);
  });
});
