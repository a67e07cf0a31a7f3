/**
 * The store port of billing: an account's spending threshold, its monthly spend with the ledger of
 * the window results applied to it, and an outbox of messages (alerts, threshold events) still to
 * be published. Thresholds and monthly spend are one port on purpose: a breach depends on both, so
 * they change atomically together (see docs/adr/0008).
 *
 * Amounts are integer minor units in JS numbers (exact up to 2^53, i.e. 90 trillion dollars).
 */

/** A calendar month in an account's time zone, "YYYY-MM". */
export type MonthKey = string;

export interface ThresholdRecord {
  amountMinor: number;
  currency: string;
  /** The account's threshold version this threshold was set as (see AccountRecord.thresholdVersion). */
  version: number;
  setAtMs: number;
  /** First month the threshold applies to: the month it was set in (account time zone). */
  effectiveFromMonth: MonthKey;
}

/** An alert raised and not yet confirmed published. */
export interface SpendingAlertRecord {
  kind: 'spending-alert';
  /** Deterministic: spending/<account>/<month>/v<threshold version>; also the Nats-Msg-Id. */
  id: string;
  accountId: string;
  month: MonthKey;
  timeZone: string;
  thresholdMinor: number;
  thresholdVersion: number;
  totalMinor: number;
  currency: string;
  /** Event time of the transaction (window) that made the total reach the threshold, or the time the threshold was set. */
  breachedAtMs: number;
  raisedAtMs: number;
}

/** A threshold change not yet confirmed published. */
export interface ThresholdChangeRecord {
  kind: 'threshold-changed';
  /** Deterministic: threshold/<account>/v<version>; also the Nats-Msg-Id. */
  id: string;
  accountId: string;
  version: number;
  /** Absent when the threshold was cleared. */
  threshold?: ThresholdRecord;
  changedAtMs: number;
}

export type OutboxEntry = SpendingAlertRecord | ThresholdChangeRecord;

export interface AccountRecord {
  accountId: string;
  /** IANA zone the account's months are counted in; fixed when the account is first seen. */
  timeZone: string;
  /** The account's currency: of its first spend or first threshold, whichever came first. */
  currency?: string;
  threshold?: ThresholdRecord;
  /** Incremented by every change of the threshold (set to another amount, or cleared); 0 = never set. */
  thresholdVersion: number;
  /** Months whose ledger is still kept (not sealed), oldest first. */
  openLedgerMonths: MonthKey[];
  /** Messages to publish; removed once the broker confirmed them. */
  outbox: OutboxEntry[];
  createdAtMs: number;
  updatedAtMs: number;
}

/** What was applied for one window (or late transaction): [revision, amountMinor, transactionCount]. */
export type LedgerEntry = [revision: number, amountMinor: number, transactionCount: number];

export interface MonthRecord {
  month: MonthKey;
  totalMinor: number;
  transactionCount: number;
  /**
   * Applied window results by window identity (and late transactions by transaction identity).
   * Keys use only [A-Za-z0-9:/_%-] (safe as MongoDB field names). Emptied when the month is sealed.
   */
  ledger: Record<string, LedgerEntry>;
  /** The ledger was dropped (month long over): further results for the month cannot be applied exactly. */
  ledgerSealed: boolean;
  /** Threshold version an alert was raised for in this month; 0 = none. */
  alertedThresholdVersion: number;
  /** Event time of the newest transaction counted; 0 = none. */
  newestEventAtMs: number;
  updatedAtMs: number;
}

export interface AccountSpendDocument {
  account: AccountRecord;
  /** At least the months asked for (those that exist); adapters may give more. */
  months: Record<MonthKey, MonthRecord>;
}

export interface AccountUpdate<R> {
  /** Months to load with the account, decided from the stored account (undefined when there is none yet). */
  months(account: AccountRecord | undefined): MonthKey[];
  /**
   * Computes the change from the current document (a private copy: changing it in place is fine).
   * Returns the document to store (undefined: store nothing) and a result for the caller. Must be a
   * pure function of its input: after a conflict with a concurrent writer it runs again on the new state.
   */
  apply(current: AccountSpendDocument | undefined): { next: AccountSpendDocument | undefined; result: R };
}

export interface ListMonthsOptions {
  /** Only months strictly before this one ("YYYY-MM"); all when absent. */
  beforeMonth?: MonthKey;
  limit: number;
}

/** Spending thresholds and monthly spend of accounts, changed atomically per account. */
export interface AccountSpendStore {
  readonly backend: 'mongodb' | 'nats-kv';
  /** Atomic read-compute-write of one account: no lost update, no double update, under any concurrency. */
  update<R>(accountId: string, update: AccountUpdate<R>): Promise<R>;
  /** The account with the months asked for; undefined when the account was never written. */
  read(accountId: string, months: (account: AccountRecord) => MonthKey[]): Promise<AccountSpendDocument | undefined>;
  /** Months of an account newest first, without their ledgers (ledger: {}). */
  listMonths(accountId: string, options: ListMonthsOptions): Promise<MonthRecord[]>;
  /** Accounts that may have unpublished outbox entries (a superset; for the sweep after a crash). */
  accountsWithOutbox(): Promise<string[]>;
  close(): Promise<void>;
}

/** The update lost against concurrent writers more often than the retry budget allows. */
export class StoreContentionError extends Error {
  override readonly name = 'StoreContentionError';
}

/** Attempts per update before StoreContentionError (each conflict means another writer succeeded). */
export const MAX_UPDATE_ATTEMPTS = 500;

/** Short randomized pause between attempts so that colliding writers spread out. */
export function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(50, 1 + attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
