import type { AnyBulkWriteOperation, Collection, MongoClient } from 'mongodb';
import { connectMongo, isOnlyDuplicateKeys } from './mongo-driver';
import type { ListMonthsOptions, MonthKey } from './account-spend-store';
import { checkWrite, type AccountStateChanges, type AccountStateRecord, type AccountStateStore, type MonthTotalRecord } from './account-state-store';

export interface MongoAccountStateStoreOptions {
  uri: string;
  /** Database name (default tollstream). */
  database?: string;
  /** Prefix of the collection names (default billing_). */
  collectionPrefix?: string;
  /** Records per bulkWrite request (default 5,000). */
  batchSize?: number;
}

type AccountDocument = Omit<AccountStateRecord, 'accountId'> & { _id: string };
type MonthDocument = MonthTotalRecord & { _id: string };
interface ShardDocument {
  _id: number;
  position: number;
}


/**
 * The production adapter: `<prefix>account_state` (one document per account), `<prefix>month_totals`
 * (one per account month, indexed by account and month) and `<prefix>shard_positions`. A write is
 * unordered bulkWrites of upserts guarded by position (`position <= new`): where the stored record
 * is newer the guard does not match, the upsert's insert hits the unique _id (E11000) and is
 * ignored; so a replay or a late former owner never moves a record back. The shard's position is
 * raised with `$max` after the records.
 */
export class MongoAccountStateStore implements AccountStateStore {
  readonly backend = 'mongodb' as const;

  private constructor(
    private readonly client: MongoClient,
    private readonly accounts: Collection<AccountDocument>,
    private readonly months: Collection<MonthDocument>,
    private readonly shards: Collection<ShardDocument>,
    private readonly legacyAccounts: Collection,
    private readonly batchSize: number,
  ) {}

  static async open(options: MongoAccountStateStoreOptions): Promise<MongoAccountStateStore> {
    const client = await connectMongo(options.uri);
    const db = client.db(options.database ?? 'tollstream');
    const prefix = options.collectionPrefix ?? 'billing_';
    const months = db.collection<MonthDocument>(`${prefix}month_totals`);
    await months.createIndex({ accountId: 1, month: -1 });
    return new MongoAccountStateStore(
      client,
      db.collection<AccountDocument>(`${prefix}account_state`),
      months,
      db.collection<ShardDocument>(`${prefix}shard_positions`),
      db.collection(`${prefix}accounts`),
      Math.max(1, options.batchSize ?? 5_000),
    );
  }

  async write(shard: number, position: number, changes: AccountStateChanges): Promise<void> {
    checkWrite(shard, position, changes);
    const accountOps: AnyBulkWriteOperation<AccountDocument>[] = changes.accounts.map(({ accountId, ...record }) => ({
      // Replaced whole: an absent threshold or currency must be removed, not kept.
      replaceOne: { filter: { _id: accountId, position: { $lte: record.position } }, replacement: record, upsert: true },
    }));
    const monthOps: AnyBulkWriteOperation<MonthDocument>[] = changes.months.map((record) => {
      const _id = `${record.accountId}|${record.month}`;
      return { updateOne: { filter: { _id, position: { $lte: record.position } }, update: { $set: { ...record } }, upsert: true } };
    });
    await this.bulk(this.accounts, accountOps);
    await this.bulk(this.months, monthOps);
    await this.shards.updateOne({ _id: shard }, { $max: { position } }, { upsert: true });
  }

  private async bulk<T extends { _id: string }>(collection: Collection<T>, operations: AnyBulkWriteOperation<T>[]): Promise<void> {
    for (let start = 0; start < operations.length; start += this.batchSize) {
      try {
        await collection.bulkWrite(operations.slice(start, start + this.batchSize), { ordered: false });
      } catch (error) {
        // A newer stored record: its guard did not match and the upsert's insert collided. Anything else fails the write.
        if (isOnlyDuplicateKeys(error)) continue;
        throw error;
      }
    }
  }

  async flushedPosition(shard: number): Promise<number> {
    return (await this.shards.findOne({ _id: shard }))?.position ?? 0;
  }

  async readAccount(accountId: string): Promise<AccountStateRecord | undefined> {
    const stored = await this.accounts.findOne({ _id: accountId });
    if (!stored) return undefined;
    const { _id, ...record } = stored;
    return { accountId: _id, ...record };
  }

  async readMonth(accountId: string, month: MonthKey): Promise<MonthTotalRecord | undefined> {
    const stored = await this.months.findOne({ _id: `${accountId}|${month}` });
    return stored ? monthRecordOf(stored) : undefined;
  }

  async listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthTotalRecord[]> {
    if (options.limit <= 0) return [];
    const filter = options.beforeMonth === undefined ? { accountId } : { accountId, month: { $lt: options.beforeMonth } };
    const stored = await this.months.find(filter).sort({ month: -1 }).limit(options.limit).toArray();
    return stored.map(monthRecordOf);
  }

  async legacyAccountsPresent(): Promise<boolean> {
    return (await this.legacyAccounts.estimatedDocumentCount()) > 0;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

function monthRecordOf(stored: MonthDocument): MonthTotalRecord {
  const { _id, ...record } = stored;
  void _id;
  return record;
}
