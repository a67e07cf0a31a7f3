import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { SnapshotStore, type SnapshotFrame } from './snapshot-store';

type Kind = 'header' | 'rows' | 'index';
const KINDS: readonly Kind[] = ['header', 'rows', 'index'];
const MiB = 1024 * 1024;
const KiB = 1024;

const text = (value: string) => new TextEncoder().encode(value);
const comparable = (frames: SnapshotFrame[] | undefined) => frames?.map((frame) => ({ kind: frame.kind, data: Buffer.from(frame.data).toString('base64') }));

describe('SnapshotStore against nats-server', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let store: SnapshotStore<Kind>;
  const BUCKET = 'spec-snapshots';

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
    store = await SnapshotStore.open(js, { bucket: BUCKET, description: 'spec', replicas: 1, sha256: 'js', kinds: KINDS });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('stores frames of every kind, one larger than the broker takes in a message, and loads them back in order', async () => {
    expect(nc.info?.max_payload).toBeLessThan(3 * MiB);
    const frames: SnapshotFrame<Kind>[] = [
      { kind: 'header', data: text('{"format":1}') },
      { kind: 'rows', data: randomBytes(3 * MiB) },
      { kind: 'index', data: new Uint8Array(0) },
      { kind: 'rows', data: randomBytes(1000) },
    ];
    const bytes = await store.save('roundtrip', frames);
    expect(bytes).toBe(frames.reduce((sum, frame) => sum + 5 + frame.data.byteLength, 0));
    expect(comparable(await store.load('roundtrip'))).toEqual(comparable(frames));
    expect(await store.exists('roundtrip')).toBe(true);
  });

  it('keeps the frame format: kind index (1 byte), length (4 bytes, big-endian), data', async () => {
    await store.save('format', [
      { kind: 'index', data: Uint8Array.of(0xaa) },
      { kind: 'header', data: Uint8Array.of(1, 2) },
    ]);
    const raw = await (await new Objm(js).open(BUCKET)).getBlob('format');
    expect([...(raw ?? [])]).toEqual([2, 0, 0, 0, 1, 0xaa, 0, 0, 0, 0, 2, 1, 2]);
  });

  it('replaces a snapshot atomically: readers see the old or the new one, a failed save leaves the old one', async () => {
    const old: SnapshotFrame<Kind>[] = [{ kind: 'header', data: text('old') }, { kind: 'rows', data: randomBytes(150 * KiB) }];
    const replacement: SnapshotFrame<Kind>[] = [{ kind: 'header', data: text('new') }, { kind: 'rows', data: randomBytes(200 * KiB) }];
    await store.save('replaced', old);

    let saved = false;
    const saving = store.save('replaced', replacement).then(() => (saved = true));
    const seen: Array<string | undefined> = [];
    while (!saved) {
      const frames = await store.load('replaced');
      seen.push(frames ? new TextDecoder().decode(frames[0].data) : undefined);
      const expected = seen.at(-1) === 'old' ? old : replacement;
      expect(comparable(frames)).toEqual(comparable(expected));
    }
    await saving;
    expect(seen).not.toContain(undefined);
    expect(comparable(await store.load('replaced'))).toEqual(comparable(replacement));

    // The old object's chunks are gone: only the new object (its chunks and one meta) remains of this name.
    const info = await (await new Objm(js).open(BUCKET)).info('replaced');
    const stream = await (await jetstreamManager(nc)).streams.info(`OBJ_${BUCKET}`, { subjects_filter: `$O.${BUCKET}.C.>` });
    expect(stream.state.subjects?.[`$O.${BUCKET}.C.${info?.nuid}`]).toBe(info?.chunks);

    const failing = function* (): Generator<SnapshotFrame<Kind>> {
      yield { kind: 'header', data: text('broken') };
      yield { kind: 'rows', data: randomBytes(150 * KiB) };
      yield { kind: 'unknown' as Kind, data: text('x') };
    };
    await expect(store.save('replaced', failing())).rejects.toThrow(/unknown frame kind "unknown"/);
    expect(comparable(await store.load('replaced'))).toEqual(comparable(replacement));
  }, 180_000);

  it('a read whose chunks a replacement purged reads the replacement instead of waiting forever', async () => {
    const objects = await new Objm(js).open(BUCKET);
    const patient = await SnapshotStore.open(js, { bucket: BUCKET, description: 'spec', replicas: 1, sha256: 'js', kinds: KINDS, readStallCheckMs: 3_000 });
    await patient.save('raced', [{ kind: 'header', data: text('old') }]);
    const oldInfo = await objects.info('raced');
    // The moment of the race: the reader has the old object's meta, the replacement has purged its chunks.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(`OBJ_${BUCKET}`, { filter: `$O.${BUCKET}.C.${oldInfo?.nuid}` });
    const loading = patient.load('raced');
    await patient.save('raced', [{ kind: 'header', data: text('new') }]);
    expect(comparable(await loading)).toEqual(comparable([{ kind: 'header', data: text('new') }]));
  });

  it('a snapshot whose chunks are gone is an error that says so, not a read that waits forever', async () => {
    const objects = await new Objm(js).open(BUCKET);
    await store.save('damaged', [{ kind: 'header', data: text('x') }, { kind: 'rows', data: randomBytes(10 * KiB) }]);
    const info = await objects.info('damaged');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(`OBJ_${BUCKET}`, { filter: `$O.${BUCKET}.C.${info?.nuid}` });
    await expect(store.load('damaged')).rejects.toThrow(/snapshot damaged in spec-snapshots is damaged: its chunks are gone/);
  });

  it('answers undefined for a snapshot or JSON object that is not there, also after removal', async () => {
    expect(await store.load('never-written')).toBeUndefined();
    expect(await store.exists('never-written')).toBe(false);
    expect(await store.readJson('never-written')).toBeUndefined();

    await store.save('removed', [{ kind: 'header', data: text('x') }]);
    await store.remove('removed');
    expect(await store.load('removed')).toBeUndefined();
    expect(await store.exists('removed')).toBe(false);
  });

  it('stores small JSON objects whole', async () => {
    await store.writeJson('configuration', { fingerprint: 'abc', configuration: { windowMs: 1000 } });
    expect(await store.readJson<{ fingerprint: string }>('configuration')).toEqual({ fingerprint: 'abc', configuration: { windowMs: 1000 } });
  });

  it('rejects a snapshot with a kind index the store does not know, or truncated', async () => {
    const objects = await new Objm(js).open(BUCKET);
    await objects.putBlob({ name: 'bad-kind' }, Uint8Array.of(0, 0, 0, 0, 1, 0x41, 7, 0, 0, 0, 1, 0x42));
    await expect(store.load('bad-kind')).rejects.toThrow(/snapshot bad-kind in spec-snapshots is corrupt at byte 11/);
    await objects.putBlob({ name: 'too-long' }, Uint8Array.of(1, 0, 0, 0, 9, 0x41));
    await expect(store.load('too-long')).rejects.toThrow(/corrupt/);
    await objects.putBlob({ name: 'truncated' }, Uint8Array.of(1, 0, 0));
    await expect(store.load('truncated')).rejects.toThrow(/truncated at byte 0/);
  });

  it('reads frames by kind position: the same bucket opened with fewer kinds rejects the later ones', async () => {
    await store.save('kinds', [{ kind: 'index', data: text('i') }]);
    const fewer = await SnapshotStore.open(js, { bucket: BUCKET, description: 'spec', replicas: 1, sha256: 'js', kinds: ['header', 'rows'] });
    await expect(fewer.load('kinds')).rejects.toThrow(/corrupt/);
  });

  it('refuses kinds that cannot be indexed', async () => {
    await expect(SnapshotStore.open(js, { bucket: BUCKET, description: 'spec', replicas: 1, sha256: 'js', kinds: [] })).rejects.toThrow(/frame kinds/);
    await expect(SnapshotStore.open(js, { bucket: BUCKET, description: 'spec', replicas: 1, sha256: 'js', kinds: ['a', 'a'] })).rejects.toThrow(/distinct/);
  });
});
