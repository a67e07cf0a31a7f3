import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { Objm, setSha256Backend, StorageType, type ObjectStore } from '@nats-io/obj';

/** One piece of a snapshot: its kind (one of the store's kinds) and opaque bytes. */
export interface SnapshotFrame<K extends string = string> {
  kind: K;
  data: Uint8Array;
}

export interface SnapshotStoreOptions<K extends string> {
  /** Object store bucket, one per service (e.g. `windower-checkpoints`). */
  bucket: string;
  description: string;
  replicas: number;
  /**
   * The frame kinds, in a fixed order: a frame stores the index of its kind, so stored snapshots
   * are only read back correctly when kinds are appended, never reordered or removed.
   */
  kinds: readonly K[];
  /**
   * How object chunks are hashed (process-wide): `native` (node:crypto, default) is many times
   * faster on large snapshots; `js` is for runtimes that cannot load node:crypto dynamically
   * (jest's module sandbox).
   */
  sha256?: 'native' | 'js';
  /** How long a read waits for data before it checks whether the snapshot was replaced (default 1 s). */
  readStallCheckMs?: number;
}

// Frame header: kind index (uint8), data length (uint32 big-endian).
const FRAME_HEADER_BYTES = 5;
const MAX_KINDS = 256;
const DEFAULT_READ_STALL_CHECK_MS = 1_000;
// A snapshot replaced again and again while it is read: give up after this many reads.
const MAX_READ_ATTEMPTS = 10;
const REPLACED_WHILE_READ = Symbol('replaced while read');
const STALLED = Symbol('stalled');

/**
 * Durable snapshots of a processor's state in a JetStream object store: chunked, so a state of
 * tens of MB fits whatever the broker's message size limit; a save replaces the previous object
 * atomically (readers see the old or the new one, never a mix).
 *
 * A snapshot is a sequence of frames (kind index, length, data), so the caller can stream its
 * state in pieces without building one buffer, and read it back piece by piece.
 */
export class SnapshotStore<K extends string = string> {
  private readonly kindIndex: ReadonlyMap<string, number>;

  private constructor(
    private readonly store: ObjectStore,
    private readonly jsm: JetStreamManager,
    private readonly bucket: string,
    private readonly kinds: readonly K[],
    private readonly readStallCheckMs: number,
  ) {
    this.kindIndex = new Map(kinds.map((kind, index) => [kind, index]));
  }

  static async open<K extends string>(js: JetStreamClient, options: SnapshotStoreOptions<K>): Promise<SnapshotStore<K>> {
    const { kinds } = options;
    if (kinds.length === 0 || kinds.length > MAX_KINDS) throw new Error(`a snapshot store needs 1 to ${MAX_KINDS} frame kinds, not ${kinds.length}`);
    if (new Set(kinds).size !== kinds.length) throw new Error(`frame kinds must be distinct: ${kinds.join(', ')}`);
    setSha256Backend(options.sha256 ?? 'native');
    const store = await new Objm(js).create(options.bucket, {
      description: options.description,
      storage: StorageType.File,
      replicas: options.replicas,
    });
    return new SnapshotStore(store, await js.jetstreamManager(false), options.bucket, [...kinds], options.readStallCheckMs ?? DEFAULT_READ_STALL_CHECK_MS);
  }

  /**
   * Stores the frames as the snapshot `name`, replacing the previous one; returns the bytes written.
   * Frames may come asynchronously (a state encoded in slices while its processor goes on): they
   * are written as they come, and the snapshot replaces the previous one only once all are written.
   */
  async save(name: string, frames: Iterable<SnapshotFrame<K>> | AsyncIterable<SnapshotFrame<K>>): Promise<number> {
    let bytes = 0;
    const { kindIndex, bucket } = this;
    const framed = async function* (): AsyncGenerator<Uint8Array> {
      for await (const frame of frames) {
        const index = kindIndex.get(frame.kind);
        // Thrown inside the stream: the put fails, its chunks are purged, the previous snapshot stays.
        if (index === undefined) throw new Error(`snapshot ${name} in ${bucket}: unknown frame kind ${JSON.stringify(frame.kind)}`);
        const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        header.writeUInt8(index, 0);
        header.writeUInt32BE(frame.data.byteLength, 1);
        bytes += FRAME_HEADER_BYTES + frame.data.byteLength;
        yield header;
        yield frame.data;
      }
    };
    await this.store.put({ name }, ReadableStream.from(framed()));
    return bytes;
  }

  /**
   * The frames of the stored snapshot, or undefined when there is none.
   *
   * A save that replaces the snapshot while it is read purges the chunks the read is waiting
   * for, and the client's object read then waits forever. So a read that stalls looks again:
   * replaced (or removed) means read the new one; chunks gone under the same object means
   * the store is damaged, and that is an error, never a hang.
   */
  async load(name: string): Promise<SnapshotFrame<K>[] | undefined> {
    for (let attempt = 1; attempt <= MAX_READ_ATTEMPTS; attempt++) {
      const frames = await this.readOnce(name);
      if (frames !== REPLACED_WHILE_READ) return frames;
    }
    throw new Error(`snapshot ${name} in ${this.bucket} was replaced while it was read, ${MAX_READ_ATTEMPTS} times in a row`);
  }

  private async readOnce(name: string): Promise<SnapshotFrame<K>[] | undefined | typeof REPLACED_WHILE_READ> {
    const result = await this.store.get(name);
    if (!result) return undefined;
    const reader = result.data.getReader();
    const parts: Uint8Array[] = [];
    let next = reader.read();
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<typeof STALLED>((resolve) => (timer = setTimeout(() => resolve(STALLED), this.readStallCheckMs)));
      const chunk = await Promise.race([next, stalled]).finally(() => clearTimeout(timer));
      if (chunk === STALLED) {
        const gone = await this.chunksGone(name, result.info.nuid);
        if (gone === 'replaced') {
          await reader.cancel();
          return REPLACED_WHILE_READ;
        }
        if (gone === 'missing') {
          await reader.cancel();
          throw new Error(`snapshot ${name} in ${this.bucket} is damaged: its chunks are gone from the object store (remove it to start from the log)`);
        }
        continue; // the same object with its chunks in place: the broker is slow, keep waiting
      }
      if (chunk.done) break;
      parts.push(chunk.value);
      next = reader.read();
    }
    const error = await result.error;
    if (error) throw new Error(`snapshot ${name} in ${this.bucket} could not be read: ${error.message}`, { cause: error });
    return this.parseFrames(name, Buffer.concat(parts));
  }

  /** Why a read of the object `nuid` may wait forever: the name now holds another object, or its chunks are gone. */
  private async chunksGone(name: string, nuid: string): Promise<'replaced' | 'missing' | undefined> {
    const current = await this.store.info(name);
    if (current === null || current.deleted || current.nuid !== nuid) return 'replaced';
    const subject = `$O.${this.bucket}.C.${nuid}`;
    const stream = await this.jsm.streams.info(`OBJ_${this.bucket}`, { subjects_filter: subject });
    return (stream.state.subjects?.[subject] ?? 0) === 0 && current.chunks > 0 ? 'missing' : undefined;
  }

  /** Whether a snapshot (or JSON object) `name` is stored, without reading it. */
  async exists(name: string): Promise<boolean> {
    const info = await this.store.info(name);
    return info !== null && !info.deleted;
  }

  /** A small JSON object stored whole (e.g. the configuration in force). */
  async readJson<T>(name: string): Promise<T | undefined> {
    const data = await this.store.getBlob(name);
    return data ? (JSON.parse(new TextDecoder().decode(data)) as T) : undefined;
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    await this.store.putBlob({ name }, new TextEncoder().encode(JSON.stringify(value)));
  }

  async remove(name: string): Promise<void> {
    await this.store.delete(name);
  }

  private parseFrames(name: string, data: Buffer): SnapshotFrame<K>[] {
    const frames: SnapshotFrame<K>[] = [];
    let offset = 0;
    while (offset < data.length) {
      if (offset + FRAME_HEADER_BYTES > data.length) throw new Error(`snapshot ${name} in ${this.bucket} is truncated at byte ${offset}`);
      const kind = this.kinds[data.readUInt8(offset)];
      const length = data.readUInt32BE(offset + 1);
      offset += FRAME_HEADER_BYTES;
      if (kind === undefined || offset + length > data.length) throw new Error(`snapshot ${name} in ${this.bucket} is corrupt at byte ${offset}`);
      frames.push({ kind, data: data.subarray(offset, offset + length) });
      offset += length;
    }
    return frames;
  }
}
