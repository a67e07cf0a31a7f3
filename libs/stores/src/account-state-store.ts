/**
 * The read model of billing's shard state machine (ADR 0013): thresholds and monthly totals as
 * the owner of each spend shard last flushed them, written in bulk (one write of every account
 * changed since the previous flush), read by the AccountService when the owner does not answer
 * and by anyone who wants the totals without asking billing.
 *
 * Every record carries the shard position (stream sequence of the record that last changed it):
 * a write never replaces a record with one of a lower position, so a replay after a restart, or a
 * paused former owner writing late, never moves a total backwards or applies anything twice.
 */
import type { ListMonthsOptions, MonthKey, ThresholdRecord } from './account-spend-store';

export interface AccountStateRecord {
  accountId: string;
  timeZone: string;
  currency?: string;
  threshold?: ThresholdRecord;
  thresholdVersion: number;
  /** Shard position of the record that last changed the account record (zone, currency, threshold). */
  position: number;
  /** Log time of that record. */
  updatedAtMs: number;
}

export interface MonthTotalRecord {
  accountId: string;
  month: MonthKey;
  totalMinor: number;
  transactionCount: number;
  /** Threshold version an alert was raised for in this month; 0 = none. */
  alertedThresholdVersion: number;
  /** Event time of the newest transaction counted; 0 = none. */
  newestEventAtMs: number;
  /** Shard position of the record that last changed the month. */
  position: number;
}

/** The accounts and months changed since the last flush. */
export interface AccountStateChanges {
  accounts: AccountStateRecord[];
  months: MonthTotalRecord[];
  /**
   * The writer's records as they are now (the state machine's), for a store that rewrites whole
   * pages of records (the embedded KV store) instead of reading them back. A record it has not is
   * read back from the store.
   */
  source?: AccountStateSource;
}

export interface AccountStateSource {
  account(accountId: string): AccountStateRecord | undefined;
  month(accountId: string, month: MonthKey): MonthTotalRecord | undefined;
}

export interface AccountStateStore {
  readonly backend: 'mongodb' | 'nats-kv';
  /**
   * Writes the changes of `shard` up to `position` (idempotent: records of a lower position than
   * the stored ones are left alone), then records `position` as the shard's flushed position.
   */
  write(shard: number, position: number, changes: AccountStateChanges): Promise<void>;
  /** The highest position written for the shard; 0 when none. */
  flushedPosition(shard: number): Promise<number>;
  readAccount(accountId: string): Promise<AccountStateRecord | undefined>;
  readMonth(accountId: string, month: MonthKey): Promise<MonthTotalRecord | undefined>;
  /** Months newest first, only those before `beforeMonth` when given, at most `limit`. */
  listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthTotalRecord[]>;
  /**
   * Whether the per-result design's store (ADR 0008) holds accounts: its totals are not in this
   * read model, so starting over them would count the month again from the log (or not at all).
   */
  legacyAccountsPresent(): Promise<boolean>;
  close(): Promise<void>;
}

/** Largest number of records one write takes (bounded memory and request sizes). */
export const MAX_RECORDS_PER_WRITE = 1_000_000;

export function checkWrite(shard: number, position: number, changes: AccountStateChanges): void {
  if (!Number.isSafeInteger(shard) || shard < 0) throw new Error(`shard must be a non-negative integer, not ${shard}`);
  if (!Number.isSafeInteger(position) || position < 0) throw new Error(`position must be a non-negative integer, not ${position}`);
  const records = changes.accounts.length + changes.months.length;
  if (records > MAX_RECORDS_PER_WRITE) throw new Error(`a write takes at most ${MAX_RECORDS_PER_WRITE} records, not ${records}`);
  for (const record of [...changes.accounts, ...changes.months]) {
    if (record.position > position) throw new Error(`record of ${record.accountId} has position ${record.position}, beyond the write's ${position}`);
  }
}
