import { jetstream, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import type { ListMonthsOptions, MonthKey } from './account-spend-store';
import { checkWrite, type AccountStateChanges, type AccountStateRecord, type AccountStateStore, type MonthTotalRecord } from './account-state-store';
import { isRevisionConflict } from './kv-compare-and-set';
import { kvKeyOfAccount } from './kv-account-spend-store';

export interface KvAccountStateStoreOptions {
  /** Prefix of the read model's buckets, one per spend shard: `<prefix>-<shard>` (default billing-state). */
  bucket?: string;
  /** Spend shard of an account (where its records are): the windower's and billing's `shardForAccount`. */
  shardOf: (accountId: string) => number;
  /** Bucket of the per-result design (ADR 0008), checked for accounts, never created (default billing-accounts). */
  legacyBucket?: string;
  /** Stream replicas: 1 locally, 3 on a cluster. */
  replicas?: number;
  /** Puts awaiting their acknowledgement at once when a write falls back to acknowledged puts (default 512). */
  maxWritesInFlight?: number;
  /** Records published between two flushes of the connection's buffer during a write (default 4,096). */
  recordsPerFlush?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The shard's flushed position, in the shard's bucket. */
const POSITION_KEY = 'position';
/** Written, acknowledged, after a write's records: its stream sequence proves that every record before it was stored. */
const WRITE_CHECK_KEY = 'write-check';
const accountKey = (accountId: string) => `account.${kvKeyOfAccount(accountId)}`;
const monthKey = (accountId: string, month: MonthKey) => `month.${kvKeyOfAccount(accountId)}.${month}`;

/**
 * Embedded adapter (local run and CI): one bucket per spend shard (`<prefix>-<shard>`), in it one
 * entry per account (`account.<id>`) and per account month (`month.<id>.<YYYY-MM>`) and the
 * flushed position (`position`). A shard's owner is its bucket's only writer, which makes a bulk
 * write cheap and still checked (ADR 0013, amendment 1): the records are published without waiting
 * for one acknowledgement each (an acknowledged put costs ~60 µs of CPU between client and broker,
 * as much as billing's whole budget per result), then one acknowledged `write-check` entry; its
 * stream sequence is the bucket's last one before the write plus the number of records plus one
 * exactly when the broker stored every record. Otherwise (a record refused, or a late former owner
 * writing too) the write is done again with acknowledged puts. Only then is the position raised, by
 * compare-and-set, never lowered. A write first reads the position and writes nothing when it is
 * not behind (a replay or a late former owner). Unlike the MongoDB adapter the records themselves
 * are not guarded one by one: a former owner paused between its check and its puts could write
 * values one flush old, which the owner's next flush of those accounts replaces (docs/billing.md).
 */
export class KvAccountStateStore implements AccountStateStore {
  readonly backend = 'nats-kv' as const;
  private readonly buckets = new Map<number, Promise<KV>>();
  private readonly js: JetStreamClient;
  private readonly kvm: Kvm;
  private readonly prefix: string;
  private readonly legacyBucket: string;
  private readonly maxWritesInFlight: number;
  private readonly recordsPerFlush: number;
  /** Writes that had to fall back to acknowledged puts (for tests and logs). */
  fallbackWrites = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: KvAccountStateStoreOptions,
  ) {
    this.js = jetstream(nc);
    this.kvm = new Kvm(this.js);
    this.prefix = options.bucket ?? 'billing-state';
    this.legacyBucket = options.legacyBucket ?? 'billing-accounts';
    this.maxWritesInFlight = Math.max(1, options.maxWritesInFlight ?? 512);
    this.recordsPerFlush = Math.max(1, options.recordsPerFlush ?? 4_096);
  }

  static async open(nc: NatsConnection, options: KvAccountStateStoreOptions): Promise<KvAccountStateStore> {
    if (!/^[A-Za-z0-9_-]+$/.test(options.bucket ?? 'billing-state')) throw new Error(`bucket prefix must be letters, digits, - or _, not ${JSON.stringify(options.bucket)}`);
    return new KvAccountStateStore(nc, options);
  }

  /** Name of the bucket that holds a shard's records. */
  bucketName(shard: number): string {
    return `${this.prefix}-${shard}`;
  }

  private bucket(shard: number): Promise<KV> {
    let bucket = this.buckets.get(shard);
    if (!bucket) {
      bucket = this.kvm.create(this.bucketName(shard), { history: 1, replicas: this.options.replicas ?? 1 });
      bucket.catch(() => this.buckets.delete(shard));
      this.buckets.set(shard, bucket);
    }
    return bucket;
  }

  async write(shard: number, position: number, changes: AccountStateChanges): Promise<void> {
    checkWrite(shard, position, changes);
    const kv = await this.bucket(shard);
    if ((await this.flushedPosition(shard)) >= position) return;
    // Encoded one by one as they are sent: a write of a million records holds no copy of them all.
    const records = function* (): Generator<[key: string, value: Uint8Array]> {
      for (const account of changes.accounts) yield [accountKey(account.accountId), encoder.encode(JSON.stringify(account))];
      for (const month of changes.months) yield [monthKey(month.accountId, month.month), encoder.encode(JSON.stringify(month))];
    };
    if (!(await this.publishChecked(shard, kv, records()))) {
      this.fallbackWrites++;
      await this.putAcknowledged(kv, records());
    }
    await this.raiseFlushedPosition(kv, shard, position);
  }

  /** Publishes the records unacknowledged, then proves by the check entry's sequence that all were stored. */
  private async publishChecked(shard: number, kv: KV, records: Iterable<[string, Uint8Array]>): Promise<boolean> {
    const subjectPrefix = `$KV.${this.bucketName(shard)}.`;
    const before = (await kv.status()).streamInfo.state.last_seq;
    let published = 0;
    for (const [key, value] of records) {
      this.nc.publish(subjectPrefix + key, value);
      // Bounded client buffer; the flush's round trip also lets the broker keep pace.
      if (++published % this.recordsPerFlush === 0) await this.nc.flush();
    }
    const check = await kv.put(WRITE_CHECK_KEY, encoder.encode(String(before)));
    return check === before + published + 1;
  }

  private async putAcknowledged(kv: KV, records: Iterable<[string, Uint8Array]>): Promise<void> {
    const inFlight = new Set<Promise<unknown>>();
    let failure: unknown;
    for (const [key, value] of records) {
      while (inFlight.size >= this.maxWritesInFlight) await Promise.race(inFlight);
      if (failure) break;
      const pending: Promise<void> = kv.put(key, value).then(
        (): void => void inFlight.delete(pending),
        (error: unknown): void => {
          inFlight.delete(pending);
          failure ??= error;
        },
      );
      inFlight.add(pending);
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
  }

  private async raiseFlushedPosition(kv: KV, shard: number, position: number): Promise<void> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const entry = await kv.get(POSITION_KEY);
      const stored = entry?.operation === 'PUT' ? Number(entry.string()) : 0;
      if (stored >= position) return;
      try {
        if (entry) await kv.update(POSITION_KEY, encoder.encode(String(position)), entry.revision);
        else await kv.create(POSITION_KEY, encoder.encode(String(position)));
        return;
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
      }
    }
    throw new Error(`shard ${shard}: the flushed position could not be raised to ${position} (100 conflicting writers)`);
  }

  async flushedPosition(shard: number): Promise<number> {
    if (!Number.isSafeInteger(shard) || shard < 0) throw new Error(`shard must be a non-negative integer, not ${shard}`);
    const entry = await (await this.bucket(shard)).get(POSITION_KEY);
    return entry?.operation === 'PUT' ? Number(entry.string()) : 0;
  }

  async readAccount(accountId: string): Promise<AccountStateRecord | undefined> {
    return this.readJson<AccountStateRecord>(accountId, accountKey(accountId));
  }

  async readMonth(accountId: string, month: MonthKey): Promise<MonthTotalRecord | undefined> {
    return this.readJson<MonthTotalRecord>(accountId, monthKey(accountId, month));
  }

  async listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthTotalRecord[]> {
    const prefix = `month.${kvKeyOfAccount(accountId)}.`;
    const months: MonthKey[] = [];
    const kv = await this.bucket(this.options.shardOf(accountId));
    for await (const key of await kv.keys(`${prefix}*`)) {
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

  private async readJson<T>(accountId: string, key: string): Promise<T | undefined> {
    const entry = await (await this.bucket(this.options.shardOf(accountId))).get(key);
    return entry?.operation === 'PUT' ? (JSON.parse(decoder.decode(entry.value)) as T) : undefined;
  }
}
