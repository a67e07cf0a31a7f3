import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import {
  type AccountRecord,
  type AccountSpendDocument,
  type AccountSpendStore,
  type AccountUpdate,
  type ListMonthsOptions,
  type MonthKey,
  type MonthRecord,
} from './account-spend-store';
import { updateWithCompareAndSet } from './kv-compare-and-set';

export interface KvAccountSpendStoreOptions {
  /** Bucket of the account documents (default billing-accounts); outbox markers go to <bucket>-outbox. */
  bucket?: string;
  /** Stream replicas of the buckets: 1 locally, 3 on a cluster. */
  replicas?: number;
  /** Outbox markers of accounts whose outbox is empty are removed once older than this (default 60 s). */
  outboxMarkerGraceMs?: number;
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
  ) {}

  static async open(js: JetStreamClient, options: KvAccountSpendStoreOptions = {}): Promise<KvAccountSpendStore> {
    const kvm = new Kvm(js);
    const bucket = options.bucket ?? 'billing-accounts';
    const replicas = options.replicas ?? 1;
    const accounts = await kvm.create(bucket, { history: 1, replicas });
    const outboxMarkers = await kvm.create(`${bucket}-outbox`, { history: 1, replicas });
    return new KvAccountSpendStore(accounts, outboxMarkers, options.outboxMarkerGraceMs ?? 60_000);
  }

  async update<R>(accountId: string, update: AccountUpdate<R>): Promise<R> {
    const key = kvKeyOfAccount(accountId);
    return updateWithCompareAndSet(this.accounts, key, `account ${accountId}`, async (entry) => {
      const current = entry !== null && entry.operation === 'PUT' ? decodeDocument(entry.value) : undefined;
      const { next, result } = update.apply(current);
      if (!next) return { value: undefined, result };
      if (next.account.accountId !== accountId) throw new Error(`update of ${accountId} returned account ${next.account.accountId}`);
      if (next.account.outbox.length > 0) await this.outboxMarkers.put(key, new Uint8Array(0));
      return { value: encodeDocument(next), result };
    });
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
    // The buckets belong to the connection, which the caller owns.
  }
}


const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeDocument(document: AccountSpendDocument): Uint8Array {
  return encoder.encode(JSON.stringify(document));
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
