import type { ClientSession, Collection, Db, MongoClient } from 'mongodb';
import { connectMongo, isDuplicateKeyError } from './mongo-driver';
import {
  backoff,
  MAX_UPDATE_ATTEMPTS,
  StoreContentionError,
  type AccountRecord,
  type AccountSpendDocument,
  type AccountSpendStore,
  type AccountUpdate,
  type ListMonthsOptions,
  type MonthKey,
  type MonthRecord,
} from './account-spend-store';

export interface MongoAccountSpendStoreOptions {
  uri: string;
  /** Database name (default tollstream). */
  database?: string;
  /** Prefix of the collection names (default billing_): <prefix>accounts, <prefix>monthly_spend. */
  collectionPrefix?: string;
}

/** Stored account: AccountRecord without accountId (it is _id), plus the guard revision. */
type AccountDocument = Omit<AccountRecord, 'accountId'> & { _id: string; rev: number; outboxPending?: true };
/** Stored month: one document per (account, month). */
type MonthDocument = MonthRecord & { _id: string; accountId: string; rev: number };

/** Another writer changed a guarded document between our read and our write. */
class GuardMissed extends Error {}

/**
 * The production adapter: MongoDB (a replica set; transactions need one).
 * - `accounts`: one document per account (threshold, currency, zone, outbox) with a revision `rev`.
 * - `monthly_spend`: one document per (account, month) with the total and the ledger of applied
 *   window results as a sub-map (bounded: sealed after the month is long over), unique on
 *   (accountId, month).
 * An update runs in a transaction with majority write concern: it reads the account and the months
 * it needs, computes, then writes each document with `findOneAndUpdate` guarded by the revision it
 * read (or `insertOne`, which the unique _id guards). The account document is written by every
 * update, so two concurrent updates of one account always conflict (write conflict or missed guard)
 * and one of them is retried on the new state: no lost and no doubled update.
 */
export class MongoAccountSpendStore implements AccountSpendStore {
  readonly backend = 'mongodb' as const;

  private constructor(
    private readonly client: MongoClient,
    private readonly accounts: Collection<AccountDocument>,
    private readonly months: Collection<MonthDocument>,
  ) {}

  static async open(options: MongoAccountSpendStoreOptions): Promise<MongoAccountSpendStore> {
    const client = await connectMongo(options.uri);
    const db: Db = client.db(options.database ?? 'tollstream');
    const prefix = options.collectionPrefix ?? 'billing_';
    const accounts = db.collection<AccountDocument>(`${prefix}accounts`);
    const months = db.collection<MonthDocument>(`${prefix}monthly_spend`);
    // Created at start-up; idempotent. Transactions cannot create collections implicitly on older servers.
    await months.createIndex({ accountId: 1, month: -1 }, { unique: true, name: 'account_month' });
    await accounts.createIndex({ outboxPending: 1 }, { name: 'outbox_pending', partialFilterExpression: { outboxPending: true } });
    return new MongoAccountSpendStore(client, accounts, months);
  }

  async update<R>(accountId: string, update: AccountUpdate<R>): Promise<R> {
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      const session = this.client.startSession();
      try {
        // withTransaction retries transient errors (write conflicts) itself and returns the callback's value.
        return await session.withTransaction((s) => this.updateOnce(accountId, update, s), {
          readConcern: { level: 'snapshot' },
          writeConcern: { w: 'majority' },
          readPreference: 'primary',
        });
      } catch (error) {
        if (!(error instanceof GuardMissed) && !isDuplicateKeyError(error)) throw error;
        await backoff(attempt);
      } finally {
        await session.endSession();
      }
    }
    throw new StoreContentionError(`account ${accountId}: no update succeeded in ${MAX_UPDATE_ATTEMPTS} attempts`);
  }

  private async updateOnce<R>(accountId: string, update: AccountUpdate<R>, session: ClientSession): Promise<R> {
    const storedAccount = await this.accounts.findOne({ _id: accountId }, { session });
    const account = storedAccount ? accountRecordOf(storedAccount) : undefined;
    const monthKeys = [...new Set(update.months(account))];
    const storedMonths = monthKeys.length
      ? await this.months.find({ _id: { $in: monthKeys.map((month) => monthId(accountId, month)) } }, { session }).toArray()
      : [];
    const current: AccountSpendDocument | undefined = account
      ? { account, months: Object.fromEntries(storedMonths.map((month) => [month.month, monthRecordOf(month)])) }
      : undefined;
    const before = new Map(storedMonths.map((month) => [month.month, { rev: month.rev, json: JSON.stringify(monthRecordOf(month)) }]));
    const { next, result } = update.apply(current);
    if (!next) return result;

    const { accountId: _ignored, ...accountFields } = next.account;
    const outboxPending = next.account.outbox.length > 0;
    if (storedAccount) {
      const written = await this.accounts.findOneAndUpdate(
        { _id: accountId, rev: storedAccount.rev },
        outboxPending
          ? { $set: { ...accountFields, outboxPending: true }, $inc: { rev: 1 } }
          : { $set: accountFields, $unset: { outboxPending: '' }, $inc: { rev: 1 } },
        { session, projection: { _id: 1 } },
      );
      if (!written) throw new GuardMissed();
    } else {
      await this.accounts.insertOne({ _id: accountId, ...accountFields, rev: 1, ...(outboxPending ? { outboxPending: true as const } : {}) }, { session });
    }

    for (const [month, record] of Object.entries(next.months)) {
      const earlier = before.get(month);
      const json = JSON.stringify(record);
      if (earlier?.json === json) continue;
      if (earlier) {
        const written = await this.months.findOneAndUpdate(
          { _id: monthId(accountId, month), rev: earlier.rev },
          { $set: { ...record }, $inc: { rev: 1 } },
          { session, projection: { _id: 1 } },
        );
        if (!written) throw new GuardMissed();
      } else {
        await this.months.insertOne({ _id: monthId(accountId, month), accountId, rev: 1, ...record }, { session });
      }
    }
    return result;
  }

  async read(accountId: string, months: (account: AccountRecord) => MonthKey[]): Promise<AccountSpendDocument | undefined> {
    const session = this.client.startSession({ snapshot: true });
    try {
      const stored = await this.accounts.findOne({ _id: accountId }, { session });
      if (!stored) return undefined;
      const account = accountRecordOf(stored);
      const keys = months(account).map((month) => monthId(accountId, month));
      const storedMonths = keys.length ? await this.months.find({ _id: { $in: keys } }, { session }).toArray() : [];
      return { account, months: Object.fromEntries(storedMonths.map((month) => [month.month, monthRecordOf(month)])) };
    } finally {
      await session.endSession();
    }
  }

  async listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthRecord[]> {
    const filter = options.beforeMonth === undefined ? { accountId } : { accountId, month: { $lt: options.beforeMonth } };
    const stored = await this.months.find(filter, { projection: { ledger: 0 } }).sort({ month: -1 }).limit(options.limit).toArray();
    return stored.map((month) => ({ ...monthRecordOf({ ...month, ledger: {} }) }));
  }

  async accountsWithOutbox(): Promise<string[]> {
    const stored = await this.accounts.find({ outboxPending: true }, { projection: { _id: 1 } }).toArray();
    return stored.map((account) => account._id);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

function monthId(accountId: string, month: MonthKey): string {
  return `${accountId}|${month}`;
}

function accountRecordOf(stored: AccountDocument): AccountRecord {
  const { _id, rev: _rev, outboxPending: _pending, ...fields } = stored;
  return { accountId: _id, ...fields };
}

function monthRecordOf(stored: MonthDocument): MonthRecord {
  const { _id, accountId: _account, rev: _rev, ...fields } = stored;
  return fields;
}

