import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { kvKeyOfAccount } from './kv-account-spend-store';
import { isRevisionConflict, updateWithCompareAndSet } from './kv-compare-and-set';
import {
  TrafficStateConflictError,
  type StationReferenceRecord,
  type StoredPartitionState,
  type TrafficDetectionStore,
  type TrafficPartitionState,
  type TrafficReferenceStore,
} from './traffic-store';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const encode = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
const decode = <T>(bytes: Uint8Array): T => JSON.parse(decoder.decode(bytes)) as T;


export interface KvTrafficStoreOptions {
  /** Bucket name (default traffic-references / traffic-detection). */
  bucket?: string;
  replicas?: number;
}

/** Embedded adapter: one KV entry per station (key = escaped station id), CAS on the entry revision. */
export class KvTrafficReferenceStore implements TrafficReferenceStore {
  readonly backend = 'nats-kv' as const;
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, options: KvTrafficStoreOptions = {}): Promise<KvTrafficReferenceStore> {
    const kv = await new Kvm(js).create(options.bucket ?? 'traffic-references', { history: 1, replicas: options.replicas ?? 1 });
    return new KvTrafficReferenceStore(kv);
  }

  async get(stationId: string): Promise<StationReferenceRecord | undefined> {
    const entry = await this.kv.get(kvKeyOfAccount(stationId));
    return entry && entry.operation === 'PUT' ? decode<StationReferenceRecord>(entry.value) : undefined;
  }

  async list(): Promise<StationReferenceRecord[]> {
    const keys: string[] = [];
    for await (const key of await this.kv.keys()) keys.push(key);
    const records: StationReferenceRecord[] = [];
    for (const key of keys) {
      const entry = await this.kv.get(key);
      if (entry && entry.operation === 'PUT') records.push(decode<StationReferenceRecord>(entry.value));
    }
    return records.sort((a, b) => (a.stationId < b.stationId ? -1 : a.stationId > b.stationId ? 1 : 0));
  }

  async update(
    stationId: string,
    apply: (current: StationReferenceRecord | undefined) => StationReferenceRecord | undefined,
  ): Promise<StationReferenceRecord | undefined> {
    return updateWithCompareAndSet(this.kv, kvKeyOfAccount(stationId), `station ${stationId}`, (entry) => {
      const current = entry && entry.operation === 'PUT' ? decode<StationReferenceRecord>(entry.value) : undefined;
      const next = apply(current);
      if (!next) return { value: undefined, result: current };
      if (next.stationId !== stationId) throw new Error(`update of ${stationId} returned station ${next.stationId}`);
      return { value: encode(next), result: next };
    });
  }

  async close(): Promise<void> {
    // The connection belongs to the caller.
  }
}

/** Embedded adapter: one KV entry per partition (key p<partition>), CAS on the entry revision. */
export class KvTrafficDetectionStore implements TrafficDetectionStore {
  readonly backend = 'nats-kv' as const;
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, options: KvTrafficStoreOptions = {}): Promise<KvTrafficDetectionStore> {
    const kv = await new Kvm(js).create(options.bucket ?? 'traffic-detection', { history: 1, replicas: options.replicas ?? 1 });
    return new KvTrafficDetectionStore(kv);
  }

  async read(partition: number): Promise<StoredPartitionState | undefined> {
    const entry = await this.kv.get(`p${partition}`);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return { state: decode<TrafficPartitionState>(entry.value), revision: entry.revision };
  }

  async write(state: TrafficPartitionState, expectedRevision: number | undefined): Promise<number> {
    const key = `p${state.partition}`;
    try {
      return expectedRevision === undefined ? await this.kv.create(key, encode(state)) : await this.kv.update(key, encode(state), expectedRevision);
    } catch (error) {
      if (isRevisionConflict(error)) {
        throw new TrafficStateConflictError(`partition ${state.partition}: state changed by another writer`);
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    // The connection belongs to the caller.
  }
}
