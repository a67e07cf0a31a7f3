import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { AppendResult, InboxPage, InboxStore, ListInboxOptions, NewNotification, StoredNotification } from './inbox-store';
import { kvKeyOfAccount } from './kv-account-spend-store';
import { updateWithCompareAndSet } from './kv-compare-and-set';

export interface KvInboxStoreOptions {
  /** Bucket of the inbox documents (default notifier-inbox). */
  bucket?: string;
  /** Stream replicas of the bucket: 1 locally, 3 on a cluster. */
  replicas?: number;
  /** Newest notifications kept per account (default 500); older ones are dropped, their alert ids kept. */
  maxNotificationsPerAccount?: number;
  /** Alert ids of dropped notifications remembered per account for deduplication (default 5,000). */
  maxRetiredAlertIds?: number;
}

/** One account's inbox: the whole document is one KV entry, changed by compare-and-set. */
interface InboxDocument {
  accountId: string;
  lastSequence: number;
  /** Oldest first. */
  notifications: StoredNotification[];
  /** Alert ids of notifications dropped by the size bound, oldest first (still deduplicated). */
  retiredAlertIds: string[];
}

/**
 * Embedded adapter (local run and CI): one JetStream KV entry per account holding its inbox as JSON;
 * every change is a compare-and-set on the entry's revision, retried on conflict. The sequence number
 * and the deduplication by alert id therefore change atomically with the notification itself.
 */
export class KvInboxStore implements InboxStore {
  readonly backend = 'nats-kv' as const;

  private constructor(
    private readonly kv: KV,
    private readonly maxNotifications: number,
    private readonly maxRetired: number,
  ) {}

  static async open(js: JetStreamClient, options: KvInboxStoreOptions = {}): Promise<KvInboxStore> {
    const kv = await new Kvm(js).create(options.bucket ?? 'notifier-inbox', { history: 1, replicas: options.replicas ?? 1 });
    return new KvInboxStore(kv, options.maxNotificationsPerAccount ?? 500, options.maxRetiredAlertIds ?? 5_000);
  }

  async append(input: NewNotification): Promise<AppendResult> {
    let result: AppendResult | undefined;
    await this.update(input.accountId, (document) => {
      const existing = document.notifications.find((n) => n.alertId === input.alertId);
      if (existing) {
        result = { notification: existing, created: false };
        return false;
      }
      if (document.retiredAlertIds.includes(input.alertId)) {
        // Older than the kept notifications: it was notified long ago; never again.
        result = { notification: { ...input, sequence: 0 }, created: false };
        return false;
      }
      const notification: StoredNotification = { ...input, sequence: document.lastSequence + 1 };
      document.lastSequence = notification.sequence;
      document.notifications.push(notification);
      while (document.notifications.length > this.maxNotifications) {
        document.retiredAlertIds.push((document.notifications.shift() as StoredNotification).alertId);
      }
      if (document.retiredAlertIds.length > this.maxRetired) document.retiredAlertIds.splice(0, document.retiredAlertIds.length - this.maxRetired);
      result = { notification, created: true };
      return true;
    });
    return result as AppendResult;
  }

  async list(accountId: string, options: ListInboxOptions): Promise<InboxPage> {
    const document = await this.read(accountId);
    if (!document) return { notifications: [], unreadCount: 0 };
    const before = options.beforeSequence ?? Number.POSITIVE_INFINITY;
    const notifications = document.notifications
      .filter((n) => n.sequence < before)
      .reverse()
      .slice(0, options.limit);
    return { notifications, unreadCount: document.notifications.filter((n) => n.readAtMs === undefined).length };
  }

  async markRead(accountId: string, sequences: number[], atMs: number): Promise<number> {
    const wanted = new Set(sequences);
    let marked = 0;
    await this.update(accountId, (document) => {
      marked = 0;
      for (const n of document.notifications) {
        if (wanted.has(n.sequence) && n.readAtMs === undefined) {
          n.readAtMs = atMs;
          marked++;
        }
      }
      return marked > 0;
    });
    return marked;
  }

  async readAfter(accountId: string, afterSequence: number, limit: number): Promise<StoredNotification[]> {
    const document = await this.read(accountId);
    if (!document) return [];
    return document.notifications.filter((n) => n.sequence > afterSequence).slice(0, limit);
  }

  async close(): Promise<void> {
    // The bucket belongs to the connection, which the caller owns.
  }

  private async read(accountId: string): Promise<InboxDocument | undefined> {
    const entry = await this.kv.get(kvKeyOfAccount(accountId));
    if (!entry || entry.operation !== 'PUT') return undefined;
    return JSON.parse(decoder.decode(entry.value)) as InboxDocument;
  }

  /** Read-change-write with CAS; `change` mutates the document and returns whether to write it. */
  private async update(accountId: string, change: (document: InboxDocument) => boolean): Promise<void> {
    await updateWithCompareAndSet(this.kv, kvKeyOfAccount(accountId), `inbox of ${accountId}`, (entry) => {
      const document: InboxDocument =
        entry !== null && entry.operation === 'PUT'
          ? (JSON.parse(decoder.decode(entry.value)) as InboxDocument)
          : { accountId, lastSequence: 0, notifications: [], retiredAlertIds: [] };
      return { value: change(document) ? encoder.encode(JSON.stringify(document)) : undefined, result: undefined };
    });
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

