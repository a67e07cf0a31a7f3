import type { Collection, MongoClient } from 'mongodb';
import { connectMongo, isDuplicateKeyError } from './mongo-driver';
import { backoff, MAX_UPDATE_ATTEMPTS, StoreContentionError } from './account-spend-store';
import {
  TrafficStateConflictError,
  type StationReferenceRecord,
  type StoredPartitionState,
  type TrafficDetectionStore,
  type TrafficPartitionState,
  type TrafficReferenceStore,
} from './traffic-store';

export interface MongoTrafficStoreOptions {
  uri: string;
  /** Database name (default tollstream). */
  database?: string;
  /** Collection names: <prefix>references, <prefix>detection_state (default traffic_). */
  collectionPrefix?: string;
}

type ReferenceDocument = Omit<StationReferenceRecord, 'stationId'> & { _id: string; rev: number };
type StateDocument = { _id: string; rev: number; state: TrafficPartitionState };

/**
 * Production adapters (MongoDB): one document per station / per partition, each write guarded by
 * the revision `rev` read before (`findOneAndUpdate({_id, rev})`, or `insertOne` guarded by the
 * unique _id). Single-document writes are atomic, so no transaction is needed.
 */
export class MongoTrafficStores {
  private constructor(
    private readonly client: MongoClient,
    readonly references: TrafficReferenceStore,
    readonly detection: TrafficDetectionStore,
  ) {}

  static async open(options: MongoTrafficStoreOptions): Promise<MongoTrafficStores> {
    const client = await connectMongo(options.uri);
    const db = client.db(options.database ?? 'tollstream');
    const prefix = options.collectionPrefix ?? 'traffic_';
    const references = db.collection<ReferenceDocument>(`${prefix}references`);
    const states = db.collection<StateDocument>(`${prefix}detection_state`);
    return new MongoTrafficStores(client, new MongoReferenceStore(references), new MongoDetectionStore(states));
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

class MongoReferenceStore implements TrafficReferenceStore {
  readonly backend = 'mongodb' as const;
  constructor(private readonly collection: Collection<ReferenceDocument>) {}

  async get(stationId: string): Promise<StationReferenceRecord | undefined> {
    const document = await this.collection.findOne({ _id: stationId });
    return document ? { stationId, versions: document.versions } : undefined;
  }

  async list(): Promise<StationReferenceRecord[]> {
    const documents = await this.collection.find({}).sort({ _id: 1 }).toArray();
    return documents.map((document) => ({ stationId: document._id, versions: document.versions }));
  }

  async update(stationId: string, apply: (current: StationReferenceRecord | undefined) => StationReferenceRecord | undefined): Promise<StationReferenceRecord | undefined> {
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const document = await this.collection.findOne({ _id: stationId });
      const current = document ? { stationId, versions: document.versions } : undefined;
      const next = apply(current);
      if (!next) return current;
      if (next.stationId !== stationId) throw new Error(`update of ${stationId} returned station ${next.stationId}`);
      try {
        if (!document) {
          await this.collection.insertOne({ _id: stationId, rev: 1, versions: next.versions });
          return next;
        }
        const updated = await this.collection.findOneAndUpdate({ _id: stationId, rev: document.rev }, { $set: { versions: next.versions, rev: document.rev + 1 } });
        if (updated) return next;
      } catch (error) {
        if (!isDuplicateKeyError(error)) throw error;
      }
      await backoff(attempt);
    }
    throw new StoreContentionError(`station ${stationId}: no update succeeded in ${MAX_UPDATE_ATTEMPTS} attempts`);
  }

  async close(): Promise<void> {
    // Closed with MongoTrafficStores.
  }
}

class MongoDetectionStore implements TrafficDetectionStore {
  readonly backend = 'mongodb' as const;
  constructor(private readonly collection: Collection<StateDocument>) {}

  async read(partition: number): Promise<StoredPartitionState | undefined> {
    const document = await this.collection.findOne({ _id: `p${partition}` });
    return document ? { state: document.state, revision: document.rev } : undefined;
  }

  async write(state: TrafficPartitionState, expectedRevision: number | undefined): Promise<number> {
    const _id = `p${state.partition}`;
    if (expectedRevision === undefined) {
      try {
        await this.collection.insertOne({ _id, rev: 1, state });
        return 1;
      } catch (error) {
        if (isDuplicateKeyError(error)) throw new TrafficStateConflictError(`partition ${state.partition}: state created by another writer`);
        throw error;
      }
    }
    const updated = await this.collection.findOneAndUpdate({ _id, rev: expectedRevision }, { $set: { state, rev: expectedRevision + 1 } });
    if (!updated) throw new TrafficStateConflictError(`partition ${state.partition}: state changed by another writer`);
    return expectedRevision + 1;
  }

  async close(): Promise<void> {
    // Closed with MongoTrafficStores.
  }
}
