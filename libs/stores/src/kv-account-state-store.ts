import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { ListMonthsOptions, MonthKey } from './account-spend-store';
import { checkWrite, type AccountStateChanges, type AccountStateRecord, type AccountStateStore, type MonthTotalRecord } from './account-state-store';
import { isRevisionConflict } from './kv-compare-and-set';
import { kvKeyOfAccount } from './kv-account-spend-store';

export interface KvAccountStateStoreOptions {
  /** Bucket of the read model (default billing-state). */
  bucket?: string;
  /** Bucket of the per-result design (ADR 0008), checked for accounts, never created (default billing-accounts). */
  legacyBucket?: string;
  /** Stream replicas: 1 locally, 3 on a cluster. */
  replicas?: number;
  /** Puts awaiting their acknowledgement at once during a write (default 512 per write: each owned shard writes on its own, and tens of thousands outstanding made the broker time them out). */
  maxWritesInFlight?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const shardKey = (shard: number) => `shard.${shard}`;
const accountKey = (accountId: string) => `account.${kvKeyOfAccount(accountId)}`;
const monthKey = (accountId: string, month: MonthKey) => `month.${kvKeyOfAccount(accountId)}.${month}`;

/**
 * Embedded adapter (local run and CI): one KV entry per account (`account.<id>`) and per account
 * month (`month.<id>.<YYYY-MM>`), and the flushed position per shard (`shard.<n>`). A write first
 * reads the shard's flushed position and writes nothing when it is not behind (a replay or a late
 * former owner), then puts the records with many puts in flight, then raises the shard's position
 * by compare-and-set (never lowers it). Unlike the MongoDB adapter the records themselves are not
 * guarded one by one: a former owner paused between its check and its puts could write values one
 * flush old, which the owner's next flush of those accounts replaces (see docs/billing.md).
 */
export class KvAccountStateStore implements AccountStateStore {
  readonly backend = 'nats-kv' as const;

  private constructor(
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly legacyBucket: string,
    private readonly maxWritesInFlight: number,
  ) {}

  static async open(js: JetStreamClient, options: KvAccountStateStoreOptions = {}): Promise<KvAccountStateStore> {
    const kv = await new Kvm(js).create(options.bucket ?? 'billing-state', { history: 1, replicas: options.replicas ?? 1 });
    return new KvAccountStateStore(js, kv, options.legacyBucket ?? 'billing-accounts', Math.max(1, options.maxWritesInFlight ?? 512));
  }

  async write(shard: number, position: number, changes: AccountStateChanges): Promise<void> {
    checkWrite(shard, position, changes);
    if ((await this.flushedPosition(shard)) >= position) return;
    const inFlight = new Set<Promise<unknown>>();
    let failure: unknown;
    const put = async (key: string, value: unknown) => {
      while (inFlight.size >= this.maxWritesInFlight) await Promise.race(inFlight);
      if (failure) throw failure;
      const pending: Promise<void> = this.kv.put(key, encoder.encode(JSON.stringify(value))).then(
        (): void => void inFlight.delete(pending),
        (error: unknown): void => {
          inFlight.delete(pending);
          failure ??= error;
        },
      );
      inFlight.add(pending);
    };
    for (const account of changes.accounts) await put(accountKey(account.accountId), account);
    for (const month of changes.months) await put(monthKey(month.accountId, month.month), month);
    await Promise.all(inFlight);
    if (failure) throw failure;
    await this.raiseFlushedPosition(shard, position);
  }

  private async raiseFlushedPosition(shard: number, position: number): Promise<void> {
    const key = shardKey(shard);
    for (let attempt = 0; attempt < 100; attempt++) {
      const entry = await this.kv.get(key);
      const stored = entry?.operation === 'PUT' ? Number(entry.string()) : 0;
      if (stored >= position) return;
      try {
        if (entry) await this.kv.update(key, encoder.encode(String(position)), entry.revision);
        else await this.kv.create(key, encoder.encode(String(position)));
        return;
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
      }
    }
    throw new Error(`shard ${shard}: the flushed position could not be raised to ${position} (100 conflicting writers)`);
  }

  async flushedPosition(shard: number): Promise<number> {
    const entry = await this.kv.get(shardKey(shard));
    return entry?.operation === 'PUT' ? Number(entry.string()) : 0;
  }

  async readAccount(accountId: string): Promise<AccountStateRecord | undefined> {
    return this.readJson<AccountStateRecord>(accountKey(accountId));
  }

  async readMonth(accountId: string, month: MonthKey): Promise<MonthTotalRecord | undefined> {
    return this.readJson<MonthTotalRecord>(monthKey(accountId, month));
  }

  async listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthTotalRecord[]> {
    const prefix = `month.${kvKeyOfAccount(accountId)}.`;
    const months: MonthKey[] = [];
    for await (const key of await this.kv.keys(`${prefix}*`)) {
      const month = key.slice(prefix.length);
      if (options.beforeMonth === undefined || month < options.beforeMonth) months.push(month);
    }
    months.sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const records = await Promise.all(months.slice(0, Math.max(0, options.limit)).map((month) => this.readMonth(accountId, month)));
    return records.filter((record): record is MonthTotalRecord => record !== undefined);
  }

  async legacyAccountsPresent(): Promise<boolean> {
    const jsm = await this.js.jetstreamManager();
    try {
      const info = await jsm.streams.info(`KV_${this.legacyBucket}`);
      return info.state.messages > 0;
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return false;
      throw error;
    }
  }

  async close(): Promise<void> {
    // The bucket belongs to the connection, which the caller owns.
  }

  private async readJson<T>(key: string): Promise<T | undefined> {
    const entry = await this.kv.get(key);
    return entry?.operation === 'PUT' ? (JSON.parse(decoder.decode(entry.value)) as T) : undefined;
  }
}
