import type { Collection, MongoClient } from 'mongodb';
import { connectMongo, isDuplicateKeyError } from './mongo-driver';
import type { AppendResult, InboxPage, InboxStore, ListInboxOptions, NewNotification, StoredNotification } from './inbox-store';

export interface MongoInboxStoreOptions {
  uri: string;
  /** Database name (default tollstream). */
  database?: string;
  /** Prefix of the collection names (default notifier_): <prefix>notifications, <prefix>inbox_heads. */
  collectionPrefix?: string;
}

type NotificationDocument = StoredNotification & { _id: string };
/** Per-account counter: the sequence of the account's newest notification. */
interface HeadDocument {
  _id: string;
  lastSequence: number;
}


/**
 * The production adapter: MongoDB (a replica set; transactions need one).
 * - `notifications`: one document per notification, `_id` = `<account>/<alert id>` (the
 *   deduplication: a second insert for the same alert fails on the unique _id), unique index
 *   (accountId, sequence).
 * - `inbox_heads`: one counter per account.
 * An append is one transaction: look up the alert, increment the account's counter, insert. Two
 * concurrent appends of one account both write the counter document, so they conflict and are
 * serialized: sequence numbers commit in order and without gaps (a reader never sees N+1 before N).
 */
export class MongoInboxStore implements InboxStore {
  readonly backend = 'mongodb' as const;

  private constructor(
    private readonly client: MongoClient,
    private readonly notifications: Collection<NotificationDocument>,
    private readonly heads: Collection<HeadDocument>,
  ) {}

  static async open(options: MongoInboxStoreOptions): Promise<MongoInboxStore> {
    const client = await connectMongo(options.uri);
    const db = client.db(options.database ?? 'tollstream');
    const prefix = options.collectionPrefix ?? 'notifier_';
    const notifications = db.collection<NotificationDocument>(`${prefix}notifications`);
    const heads = db.collection<HeadDocument>(`${prefix}inbox_heads`);
    await notifications.createIndex({ accountId: 1, sequence: -1 }, { unique: true, name: 'account_sequence' });
    return new MongoInboxStore(client, notifications, heads);
  }

  async append(input: NewNotification): Promise<AppendResult> {
    const id = `${input.accountId}/${input.alertId}`;
    for (;;) {
      const existing = await this.notifications.findOne({ _id: id });
      if (existing) return { notification: withoutId(existing), created: false };
      const session = this.client.startSession();
      try {
        // withTransaction retries transient errors (write conflicts on the counter) itself.
        const notification = await session.withTransaction(async (s) => {
          const head = await this.heads.findOneAndUpdate({ _id: input.accountId }, { $inc: { lastSequence: 1 } }, { upsert: true, returnDocument: 'after', session: s });
          const stored: StoredNotification = { ...input, sequence: (head as HeadDocument).lastSequence };
          await this.notifications.insertOne({ _id: id, ...stored }, { session: s });
          return stored;
        });
        return { notification, created: true };
      } catch (error) {
        // Another writer stored the same alert concurrently: read it on the next turn.
        if (!isDuplicateKeyError(error)) throw error;
      } finally {
        await session.endSession();
      }
    }
  }

  async list(accountId: string, options: ListInboxOptions): Promise<InboxPage> {
    const filter = options.beforeSequence !== undefined ? { accountId, sequence: { $lt: options.beforeSequence } } : { accountId };
    const documents = await this.notifications.find(filter).sort({ sequence: -1 }).limit(options.limit).toArray();
    const unreadCount = await this.notifications.countDocuments({ accountId, readAtMs: { $exists: false } });
    return { notifications: documents.map(withoutId), unreadCount };
  }

  async markRead(accountId: string, sequences: number[], atMs: number): Promise<number> {
    if (sequences.length === 0) return 0;
    const result = await this.notifications.updateMany({ accountId, sequence: { $in: sequences }, readAtMs: { $exists: false } }, { $set: { readAtMs: atMs } });
    return result.modifiedCount;
  }

  async readAfter(accountId: string, afterSequence: number, limit: number): Promise<StoredNotification[]> {
    const documents = await this.notifications.find({ accountId, sequence: { $gt: afterSequence } }).sort({ sequence: 1 }).limit(limit).toArray();
    return documents.map(withoutId);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

function withoutId(document: NotificationDocument): StoredNotification {
  const { _id, ...notification } = document;
  void _id;
  return notification;
}
