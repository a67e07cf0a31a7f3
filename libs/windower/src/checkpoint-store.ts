import type { JetStreamClient } from '@nats-io/jetstream';
import { Objm, setSha256Backend, StorageType, type ObjectStore } from '@nats-io/obj';
import type { SnapshotFrame, SnapshotFrameKind } from './partition-processor';

export const CHECKPOINT_BUCKET = 'windower-checkpoints';

const FRAME_KINDS: SnapshotFrameKind[] = ['header', 'customer-spend', 'station-traffic'];
const FRAME_HEADER_BYTES = 5;

/**
 * Durable snapshots of the windower's per-partition state in a JetStream object store: chunked,
 * so a state of a million open windows (tens of MB) fits whatever the broker's message size
 * limit; a put replaces the previous object atomically (readers see the old or the new one).
 *
 * The object name carries a fingerprint of the window configuration: after a configuration change
 * no old state is restored into windows of another shape; the partition is recomputed from the
 * stream instead (Kappa: results are a function of the log).
 */
export class CheckpointStore {
  private constructor(private readonly store: ObjectStore) {}

  static async open(js: JetStreamClient, options: { replicas: number }): Promise<CheckpointStore> {
    // Node's crypto: the pure-JS default hashes a large snapshot many times slower.
    setSha256Backend('native');
    const store = await new Objm(js).create(CHECKPOINT_BUCKET, {
      description: 'windower partition state (window snapshots and input position)',
      storage: StorageType.File,
      replicas: options.replicas,
    });
    return new CheckpointStore(store);
  }

  /** Stores the frames of a partition's snapshot; returns the bytes written. */
  async save(name: string, frames: Iterable<SnapshotFrame>): Promise<number> {
    let bytes = 0;
    const framed = function* (): Generator<Uint8Array> {
      for (const frame of frames) {
        const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        header.writeUInt8(FRAME_KINDS.indexOf(frame.kind), 0);
        header.writeUInt32BE(frame.data.byteLength, 1);
        bytes += FRAME_HEADER_BYTES + frame.data.byteLength;
        yield header;
        yield frame.data;
      }
    };
    await this.store.put({ name }, ReadableStream.from(framed()));
    return bytes;
  }

  /** The frames of the stored snapshot, or undefined when there is none. */
  async load(name: string): Promise<SnapshotFrame[] | undefined> {
    const result = await this.store.get(name);
    if (!result) return undefined;
    const parts: Uint8Array[] = [];
    for await (const part of result.data) parts.push(part);
    const error = await result.error;
    if (error) throw new Error(`checkpoint ${name} could not be read: ${error.message}`, { cause: error });
    return parseFrames(name, Buffer.concat(parts));
  }

  /** A small JSON object stored whole (e.g. the window configuration in force). */
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
}

function parseFrames(name: string, data: Buffer): SnapshotFrame[] {
  const frames: SnapshotFrame[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (offset + FRAME_HEADER_BYTES > data.length) throw new Error(`checkpoint ${name} is truncated at byte ${offset}`);
    const kind = FRAME_KINDS[data.readUInt8(offset)];
    const length = data.readUInt32BE(offset + 1);
    offset += FRAME_HEADER_BYTES;
    if (!kind || offset + length > data.length) throw new Error(`checkpoint ${name} is corrupt at byte ${offset}`);
    frames.push({ kind, data: data.subarray(offset, offset + length) });
    offset += length;
  }
  return frames;
}
