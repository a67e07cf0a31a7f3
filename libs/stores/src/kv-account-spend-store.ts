import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import {
  type AccountSpendDocument,
  type AccountSpendStore,
  type AccountUpdate,
  type ListMonthsOptions,
  type MonthKey,
  type MonthRecord,
} from './account-spend-store';
import {
  backoff,
  MAX_UPDATE_ATTEMPTS,
  StoreContentionError,
  type AccountRecord,
} from './account-spend-store';
import { isRevisionConflict } from './kv-compare-and-set';
import { KvDirectRequests, KvRevisionConflict } from './kv-direct-requests';
import type { NatsConnection } from '@nats-io/transport-node';

export interface KvAccountSpendStoreOptions {
  /** Bucket of the account documents (default billing-accounts); outbox markers go to <bucket>-outbox. */
  bucket?: string;
  /** Stream replicas of the buckets: 1 locally, 3 on a cluster. */
  replicas?: number;
  /** Outbox markers of accounts whose outbox is empty are removed once older than this (default 60 s). */
  outboxMarkerGraceMs?: number;
  /**
   * Accounts whose last written entry (revision + document) this process keeps, least recently
   * updated evicted first (default 20,000; 0 = none). An update of a cached account skips the read
   * and compare-and-sets against the cached revision; see update().
   */
  cachedAccounts?: number;
  /**
   * Bound of the cache by size: the documents' JSON characters (plus a fixed overhead per entry)
   * kept at most (default 64 MiB; 0 = no bound by size). Least recently updated evicted first.
   */
  cacheMaxBytes?: number;
  /**
   * The connection `js` was made from: the get and compare-and-set of account entries then go
   * through KvDirectRequests (same wire messages, far less client CPU) when the bucket allows direct
   * gets and has no domain/mirror; without it, through the @nats-io/kv methods.
   */
  connection?: NatsConnection;
}

/** An entry as this process last wrote it (or read it): its revision and the document's JSON. */
interface CachedEntry {
  revision: number;
  json: string;
}

/**
 * Embedded adapter for the local run and CI (no MongoDB server): one JetStream KV entry per account
 * holding the whole AccountSpendDocument as JSON; every update is a compare-and-set on the entry's
 * revision (`kv.create` / `kv.update(key, value, revision)`), retried on conflict. Accounts that may
 * have outbox entries are marked in a second bucket, written before the document, so a sweep after
 * a crash finds them without reading every account.
 */
export class KvAccountSpendStore implements AccountSpendStore {
  readonly backend = 'nats-kv' as const;

  private constructor(
    private readonly accounts: KV,
    private readonly outboxMarkers: KV,
    private readonly outboxMarkerGraceMs: number,
    private readonly cacheLimit: number,
    private readonly cacheMaxBytes: number,
    private readonly direct: KvDirectRequests | undefined,
  ) {}

  /** Estimated bytes held by the cache (JSON characters + CACHE_ENTRY_OVERHEAD per entry). */
  private cacheBytes = 0;

  /** Insertion order = recency (re-inserted on every use): the first key is the least recently used. */
  private readonly cache = new Map<string, CachedEntry>();

  static async open(js: JetStreamClient, options: KvAccountSpendStoreOptions = {}): Promise<KvAccountSpendStore> {
    const kvm = new Kvm(js);
    const bucket = options.bucket ?? 'billing-accounts';
    const replicas = options.replicas ?? 1;
    const accounts = await kvm.create(bucket, { history: 1, replicas });
    const outboxMarkers = await kvm.create(`${bucket}-outbox`, { history: 1, replicas });
    const { streamInfo } = await accounts.status();
    const direct =
      options.connection && streamInfo.config.allow_direct && !streamInfo.config.mirror && !streamInfo.config.sources?.length
        ? new KvDirectRequests(options.connection, bucket)
        : undefined;
    return new KvAccountSpendStore(accounts, outboxMarkers, options.outboxMarkerGraceMs ?? 60_000, options.cachedAccounts ?? 20_000, options.cacheMaxBytes ?? 64 * 1024 * 1024, direct);
  }

  /**
   * Read-compute-compare-and-set, retried on conflict. With a cached entry (this process wrote or
   * read the account before) the read is skipped: the change is computed from the cached document
   * and written with `kv.update(key, value, cachedRevision)`, which the server refuses if anyone
   * wrote the entry since, so a stale cache can only cost a retry, never a lost or double update.
   * A computation that writes nothing is only answered if the entry's revision, read now, is still
   * the cached one (else it runs again on the current entry), so answers are never stale either.
   */
  async update<R>(accountId: string, update: AccountUpdate<R>): Promise<R> {
    const key = kvKeyOfAccount(accountId);
    let cached = this.cacheLimit > 0 ? this.cache.get(key) : undefined;
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
      let revision: number; // 0: no entry
      let current: AccountSpendDocument | undefined;
      if (cached) {
        revision = cached.revision;
        current = JSON.parse(cached.json) as AccountSpendDocument;
      } else {
        const entry = await this.getEntry(key);
        revision = entry?.revision ?? 0;
        if (entry !== null && entry.operation === 'PUT') {
          const json = decoder.decode(entry.value);
          current = JSON.parse(json) as AccountSpendDocument;
          this.remember(key, { revision, json });
        } else {
          current = undefined;
          this.forget(key);
        }
      }
      const { next, result } = update.apply(current);
      if (!next) {
        if (!cached) return result;
        // Computed from the cache: answer only if the entry is still the cached revision.
        const entry = await this.getEntry(key);
        if ((entry?.revision ?? 0) === cached.revision) return result;
        cached = undefined;
        this.forget(key);
        continue;
      }
      if (next.account.accountId !== accountId) throw new Error(`update of ${accountId} returned account ${next.account.accountId}`);
      if (next.account.outbox.length > 0) await this.outboxMarkers.put(key, new Uint8Array(0));
      const json = JSON.stringify(next);
      try {
        const written = this.direct
          ? await this.direct.compareAndSet(key, encoder.encode(json), revision)
          : revision === 0
            ? await this.accounts.create(key, encoder.encode(json))
            : await this.accounts.update(key, encoder.encode(json), revision);
        this.remember(key, { revision: written, json });
        return result;
      } catch (error) {
        this.forget(key);
        if (!(error instanceof KvRevisionConflict) && !isRevisionConflict(error)) throw error;
        // A stale cache is no contention: read and retry at once; a conflict after a read backs off.
        if (!cached) await backoff(attempt);
        cached = undefined;
      }
    }
    throw new StoreContentionError(`account ${accountId}: no update succeeded in ${MAX_UPDATE_ATTEMPTS} attempts`);
  }

  private async getEntry(key: string): Promise<{ revision: number; operation: string; value: Uint8Array } | null> {
    return this.direct ? this.direct.get(key) : this.accounts.get(key);
  }

  private remember(key: string, entry: CachedEntry): void {
    if (this.cacheLimit <= 0) return;
    this.forget(key);
    const size = cacheEntrySize(key, entry);
    if (this.cacheMaxBytes > 0 && size > this.cacheMaxBytes) return;
    this.cache.set(key, entry);
    this.cacheBytes += size;
    while (this.cache.size > this.cacheLimit || (this.cacheMaxBytes > 0 && this.cacheBytes > this.cacheMaxBytes)) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.forget(oldest.value);
    }
  }

  private forget(key: string): void {
    const entry = this.cache.get(key);
    if (!entry) return;
    this.cache.delete(key);
    this.cacheBytes -= cacheEntrySize(key, entry);
  }

  async read(accountId: string, months: (account: AccountRecord) => MonthKey[]): Promise<AccountSpendDocument | undefined> {
    const entry = await this.accounts.get(kvKeyOfAccount(accountId));
    if (!entry || entry.operation !== 'PUT') return undefined;
    const document = decodeDocument(entry.value);
    months(document.account); // every month is in the one entry
    return document;
  }

  async listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthRecord[]> {
    const entry = await this.accounts.get(kvKeyOfAccount(accountId));
    if (!entry || entry.operation !== 'PUT') return [];
    const { months } = decodeDocument(entry.value);
    return Object.values(months)
      .filter((month) => options.beforeMonth === undefined || month.month < options.beforeMonth)
      .sort((a, b) => (a.month < b.month ? 1 : -1))
      .slice(0, options.limit)
      .map((month) => ({ ...month, ledger: {} }));
  }

  async accountsWithOutbox(): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of await this.outboxMarkers.keys()) keys.push(key);
    const accountIds: string[] = [];
    for (const key of keys) {
      const marker = await this.outboxMarkers.get(key);
      if (!marker || marker.operation !== 'PUT') continue;
      const entry = await this.accounts.get(key);
      const document = entry && entry.operation === 'PUT' ? decodeDocument(entry.value) : undefined;
      if (document && document.account.outbox.length > 0) {
        accountIds.push(document.account.accountId);
      } else if (Date.now() - marker.created.getTime() >= this.outboxMarkerGraceMs) {
        // Old enough that no writer can still be between marking and writing: remove, unless re-marked meanwhile.
        await this.outboxMarkers.delete(key, { previousSeq: marker.revision }).catch(() => undefined);
      }
    }
    return accountIds;
  }

  async close(): Promise<void> {
    this.direct?.close();
    // The buckets belong to the connection, which the caller owns.
  }
}


const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Fixed bytes counted per cached entry besides its JSON (map slot, entry object, key string). */
const CACHE_ENTRY_OVERHEAD = 160;

function cacheEntrySize(key: string, entry: CachedEntry): number {
  return entry.json.length + key.length + CACHE_ENTRY_OVERHEAD;
}

function decodeDocument(bytes: Uint8Array): AccountSpendDocument {
  return JSON.parse(decoder.decode(bytes)) as AccountSpendDocument;
}

/**
 * KV keys allow [-/_=.a-zA-Z0-9] and use '.' as a token separator: everything outside
 * [A-Za-z0-9_-] is written as '=' + two hex digits per UTF-8 byte. Injective, so distinct accounts
 * never share a key.
 */
export function kvKeyOfAccount(accountId: string): string {
  if (accountId.length === 0) throw new Error('account id is empty');
  let key = '';
  for (const byte of encoder.encode(accountId)) {
    const char = String.fromCharCode(byte);
    key += /[A-Za-z0-9_-]/.test(char) ? char : `=${byte.toString(16).padStart(2, '0')}`;
  }
  return key;
}
