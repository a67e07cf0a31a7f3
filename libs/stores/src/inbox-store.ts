/**
 * Port of the per-account notification inbox of the notifier (docs/adr/0010). Each alert becomes at
 * most one notification of an account (idempotent by alert id); notifications of an account carry
 * a strictly increasing sequence number (1, 2, 3, ... in the order they were stored, no gaps), so
 * "everything after notification N" is well defined for subscribers that resume.
 */

/** What the notifier stores for an alert. */
export interface NewNotification {
  accountId: string;
  /** Deduplication key: appending a second notification for the same alert returns the first. */
  alertId: string;
  title: string;
  body: string;
  /** The alert itself, serialized by the caller (base64 of the protobuf bytes). */
  payload: string;
  createdAtMs: number;
}

export interface StoredNotification extends NewNotification {
  /** Per-account sequence number, from 1, strictly increasing without gaps. */
  sequence: number;
  /** Absent while unread. */
  readAtMs?: number;
}

export interface AppendResult {
  notification: StoredNotification;
  /** False when the alert had a notification already (redelivery, replay, restart). */
  created: boolean;
}

export interface ListInboxOptions {
  /** Only notifications with a smaller sequence (the next page); all when absent. */
  beforeSequence?: number;
  limit: number;
}

export interface InboxPage {
  /** Newest first. */
  notifications: StoredNotification[];
  unreadCount: number;
}

export interface InboxStore {
  readonly backend: 'mongodb' | 'nats-kv';
  /** Stores the notification unless the account has one for the alert; atomic under any concurrency. */
  append(notification: NewNotification): Promise<AppendResult>;
  /** Newest first, paged by sequence. */
  list(accountId: string, options: ListInboxOptions): Promise<InboxPage>;
  /** Marks the given notifications read (unknown ones are ignored); returns how many were unread. */
  markRead(accountId: string, sequences: number[], atMs: number): Promise<number>;
  /** Notifications with sequence > afterSequence, oldest first, at most `limit`. */
  readAfter(accountId: string, afterSequence: number, limit: number): Promise<StoredNotification[]>;
  close(): Promise<void>;
}
