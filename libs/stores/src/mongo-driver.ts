import type * as Mongo from 'mongodb';

/*
 * The MongoDB driver is loaded when a MongoDB store is opened, not when the stores are imported.
 * Why: loading it costs ~23 MiB of RSS in every process (17 MiB of it bson's serialization buffer,
 * allocated and zeroed at load), and the services that can use MongoDB (billing, notifier,
 * traffic-anomaly) run without it wherever the JetStream KV adapters are the store (ADR 0013
 * amendment 6).
 */
let loaded: typeof Mongo | undefined;

/** The driver, loaded once (a store's `open` calls this before anything else of the driver is used). */
export async function mongoDriver(): Promise<typeof Mongo> {
  loaded ??= await import('mongodb');
  return loaded;
}

/** Connects with the settings every store needs: majority writes and reads, retried writes. */
export async function connectMongo(uri: string): Promise<Mongo.MongoClient> {
  const { MongoClient } = await mongoDriver();
  const client = new MongoClient(uri, { writeConcern: { w: 'majority' }, readConcern: { level: 'majority' }, retryWrites: true });
  await client.connect();
  return client;
}

const DUPLICATE_KEY = 11000;

/** A unique index refused the write (only after a store was opened, so the driver is loaded). */
export function isDuplicateKeyError(error: unknown): boolean {
  return loaded !== undefined && error instanceof loaded.MongoServerError && error.code === DUPLICATE_KEY;
}

/** A bulk write whose every refused operation is a duplicate key (the others were applied). */
export function isOnlyDuplicateKeys(error: unknown): boolean {
  return (
    loaded !== undefined &&
    error instanceof loaded.MongoBulkWriteError &&
    error.writeErrors !== undefined &&
    [error.writeErrors].flat().every((writeError) => writeError.code === DUPLICATE_KEY)
  );
}
