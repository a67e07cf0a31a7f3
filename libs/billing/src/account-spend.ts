/**
 * The pure spend and breach logic of billing: how window results change an account's monthly
 * totals, and when a spending-threshold alert is raised. Every function here is a plain
 * state transition over an AccountSpendDocument (no I/O, no clock: "now" is an argument); the
 * store runs it atomically per account (AccountUpdate), retrying on conflict.
 *
 * Rules (docs/billing.md, ADR 0008):
 * - A ledger entry per window identity holds the revision and amount applied. A result is applied
 *   when its window is new, or replaces what was applied when its revision is higher (only the
 *   difference changes the total); an equal or lower revision changes nothing.
 * - Months are calendar months of the window start in the account's time zone.
 * - An alert is raised when a month's total is at or above the threshold that applies to the month
 *   and no alert was raised in that month for that threshold version. A threshold version changes
 *   whenever the threshold is set to another amount or cleared, so a raised threshold crossed again
 *   alerts again, while replays, redeliveries and dips below and back above the same threshold do not.
 */
import type {
  AccountRecord,
  AccountSpendDocument,
  AccountUpdate,
  MonthKey,
  MonthRecord,
  OutboxEntry,
  SpendingAlertRecord,
  ThresholdRecord,
} from '@tollstream/stores';
import { monthCertainlyOverAtMs, monthOf } from './months';
import type { SpendEntry } from './spend-entries';

export interface BillingPolicy {
  /** Zone of new accounts' months (the operator's). */
  operatorTimeZone: string;
  /**
   * A month's ledger is dropped this long after the month is over everywhere; results for the month
   * arriving later are rejected (dead-lettered). Must exceed the retention of TOLL_AGG plus the windower's lateness.
   */
  ledgerRetentionMs: number;
}

export type EntryOutcome = 'applied' | 'amended' | 'duplicate' | 'superseded' | 'currency-mismatch' | 'month-sealed';

export interface ApplySpendResult {
  outcomes: Record<EntryOutcome, number>;
  /** Entries that could not be applied, with the reason (to dead-letter). */
  rejected: Array<{ entry: SpendEntry; reason: 'currency-mismatch' | 'month-sealed' }>;
  /** Alerts raised by this application. */
  raised: SpendingAlertRecord[];
  /** Every unpublished message of the account (raised now or earlier and not yet confirmed). */
  outbox: OutboxEntry[];
  /** Spend still needed before the account's next alert, after this application (see alertHeadroomMinor). */
  alertHeadroomMinor?: number;
}

export function alertIdOf(accountId: string, month: MonthKey, thresholdVersion: number): string {
  return `spending/${accountId}/${month}/v${thresholdVersion}`;
}

export function thresholdEventIdOf(accountId: string, version: number): string {
  return `threshold/${accountId}/v${version}`;
}

export function newAccountDocument(accountId: string, timeZone: string, nowMs: number): AccountSpendDocument {
  return {
    account: { accountId, timeZone, thresholdVersion: 0, openLedgerMonths: [], outbox: [], createdAtMs: nowMs, updatedAtMs: nowMs },
    months: {},
  };
}

export function newMonthRecord(month: MonthKey, nowMs: number): MonthRecord {
  return { month, totalMinor: 0, transactionCount: 0, ledger: {}, ledgerSealed: false, alertedThresholdVersion: 0, newestEventAtMs: 0, updatedAtMs: nowMs };
}

export const timeZoneOf = (account: Pick<AccountRecord, 'timeZone'> | undefined, policy: BillingPolicy): string => account?.timeZone ?? policy.operatorTimeZone;

/** The month of "now" for an account. */
export function currentMonthOf(account: Pick<AccountRecord, 'timeZone'> | undefined, policy: BillingPolicy, nowMs: number): MonthKey {
  return monthOf(nowMs, timeZoneOf(account, policy));
}

function monthsToSeal(account: AccountRecord | undefined, policy: BillingPolicy, nowMs: number): MonthKey[] {
  return (account?.openLedgerMonths ?? []).filter((month) => monthCertainlyOverAtMs(month) + policy.ledgerRetentionMs < nowMs);
}

/**
 * Raises the alert of `month` if its total is at or above the threshold that applies and none was
 * raised for this threshold version in the month. Returns the alert raised, if any.
 */
function checkBreach(document: AccountSpendDocument, month: MonthKey, breachedAtMs: number, nowMs: number): SpendingAlertRecord | undefined {
  const { account } = document;
  const threshold = account.threshold;
  const record = document.months[month];
  if (!threshold || !record || month < threshold.effectiveFromMonth) return undefined;
  if (record.totalMinor < threshold.amountMinor || record.alertedThresholdVersion === threshold.version) return undefined;
  record.alertedThresholdVersion = threshold.version;
  const alert: SpendingAlertRecord = {
    kind: 'spending-alert',
    id: alertIdOf(account.accountId, month, threshold.version),
    accountId: account.accountId,
    month,
    timeZone: account.timeZone,
    thresholdMinor: threshold.amountMinor,
    thresholdVersion: threshold.version,
    totalMinor: record.totalMinor,
    currency: threshold.currency,
    breachedAtMs,
    raisedAtMs: nowMs,
  };
  account.outbox.push(alert);
  return alert;
}

/**
 * Spend (minor units) that would raise the account's next spending alert in the current month:
 * threshold minus the month's total, 0 when an alert is due, undefined when no alert can come this
 * month (no threshold, or already alerted for this threshold version). Only a hint for ordering
 * work (alerts first); it ignores late results for earlier months.
 */
export function alertHeadroomMinor(document: AccountSpendDocument, policy: BillingPolicy, nowMs: number): number | undefined {
  const { threshold } = document.account;
  if (!threshold) return undefined;
  const month = currentMonthOf(document.account, policy, nowMs);
  if (month < threshold.effectiveFromMonth) return threshold.amountMinor;
  const record = document.months[month];
  if (record?.alertedThresholdVersion === threshold.version) return undefined;
  return Math.max(0, threshold.amountMinor - (record?.totalMinor ?? 0));
}

function emptyOutcomes(): Record<EntryOutcome, number> {
  return { applied: 0, amended: 0, duplicate: 0, superseded: 0, 'currency-mismatch': 0, 'month-sealed': 0 };
}

/** Applies window results / late transactions of ONE account, in the given order. */
export function applySpend(
  accountId: string,
  entries: readonly SpendEntry[],
  policy: BillingPolicy,
  nowMs: number,
): AccountUpdate<ApplySpendResult> {
  return {
    months: (account) => {
      const zone = timeZoneOf(account, policy);
      const months = new Set(entries.map((entry) => monthOf(entry.monthInstantMs, zone)));
      for (const month of monthsToSeal(account, policy, nowMs)) months.add(month);
      return [...months];
    },
    apply: (current) => {
      const document = current ?? newAccountDocument(accountId, policy.operatorTimeZone, nowMs);
      const { account } = document;
      const result: ApplySpendResult = { outcomes: emptyOutcomes(), rejected: [], raised: [], outbox: account.outbox };
      let changed = false;

      for (const month of monthsToSeal(account, policy, nowMs)) {
        const record = document.months[month];
        if (record) {
          record.ledger = {};
          record.ledgerSealed = true;
          record.updatedAtMs = nowMs;
        }
        account.openLedgerMonths = account.openLedgerMonths.filter((open) => open !== month);
        changed = true;
      }

      for (const entry of entries) {
        if (entry.accountId !== accountId) throw new Error(`entry of ${entry.accountId} applied to ${accountId}`);
        if (account.currency === undefined) {
          account.currency = entry.currency;
          changed = true;
        } else if (account.currency !== entry.currency) {
          result.outcomes['currency-mismatch']++;
          result.rejected.push({ entry, reason: 'currency-mismatch' });
          continue;
        }
        const month = monthOf(entry.monthInstantMs, account.timeZone);
        let record = document.months[month];
        if (!record) {
          record = newMonthRecord(month, nowMs);
          document.months[month] = record;
          account.openLedgerMonths = [...account.openLedgerMonths, month].sort();
        }
        if (record.ledgerSealed) {
          result.outcomes['month-sealed']++;
          result.rejected.push({ entry, reason: 'month-sealed' });
          continue;
        }
        const applied = record.ledger[entry.ledgerKey];
        if (applied && applied[0] >= entry.revision) {
          result.outcomes[applied[0] === entry.revision ? 'duplicate' : 'superseded']++;
          continue;
        }
        result.outcomes[applied ? 'amended' : 'applied']++;
        record.totalMinor += entry.amountMinor - (applied?.[1] ?? 0);
        record.transactionCount += entry.transactionCount - (applied?.[2] ?? 0);
        record.ledger[entry.ledgerKey] = [entry.revision, entry.amountMinor, entry.transactionCount];
        record.newestEventAtMs = Math.max(record.newestEventAtMs, entry.occurredAtMs);
        record.updatedAtMs = nowMs;
        changed = true;
        const alert = checkBreach(document, month, entry.occurredAtMs, nowMs);
        if (alert) result.raised.push(alert);
      }

      result.alertHeadroomMinor = alertHeadroomMinor(document, policy, nowMs);
      if (!changed) return { next: undefined, result };
      account.updatedAtMs = nowMs;
      result.outbox = account.outbox;
      return { next: document, result };
    },
  };
}

export interface ThresholdInput {
  amountMinor: number;
  currency: string;
}

export type SetThresholdResult =
  | { ok: true; threshold: ThresholdRecord; timeZone: string; changed: boolean; breachedNow: boolean; outbox: OutboxEntry[]; alertHeadroomMinor?: number }
  | { ok: false; reason: 'currency-mismatch'; accountCurrency: string };

/**
 * Sets the account's threshold. The same amount again changes nothing (idempotent retries); another
 * amount is a new threshold version, effective from the current month, and a threshold at or below
 * the current month's total raises the alert at once (breach time: now).
 */
export function setThreshold(accountId: string, input: ThresholdInput, policy: BillingPolicy, nowMs: number): AccountUpdate<SetThresholdResult> {
  return {
    months: (account) => [currentMonthOf(account, policy, nowMs)],
    apply: (current) => {
      const document = current ?? newAccountDocument(accountId, policy.operatorTimeZone, nowMs);
      const { account } = document;
      if (account.currency !== undefined && account.currency !== input.currency) {
        return { next: undefined, result: { ok: false, reason: 'currency-mismatch', accountCurrency: account.currency } };
      }
      const existing = account.threshold;
      if (existing && existing.amountMinor === input.amountMinor && existing.currency === input.currency) {
        // The same amount again (often a client's retry after a lost reply): report the alert as it stands.
        const standing = document.months[currentMonthOf(account, policy, nowMs)]?.alertedThresholdVersion === existing.version;
        return {
          next: undefined,
          result: {
            ok: true,
            threshold: existing,
            timeZone: account.timeZone,
            changed: false,
            breachedNow: standing,
            outbox: account.outbox,
            alertHeadroomMinor: alertHeadroomMinor(document, policy, nowMs),
          },
        };
      }
      const month = currentMonthOf(account, policy, nowMs);
      const version = account.thresholdVersion + 1;
      const threshold: ThresholdRecord = { amountMinor: input.amountMinor, currency: input.currency, version, setAtMs: nowMs, effectiveFromMonth: month };
      account.currency ??= input.currency;
      account.threshold = threshold;
      account.thresholdVersion = version;
      account.updatedAtMs = nowMs;
      account.outbox.push({ kind: 'threshold-changed', id: thresholdEventIdOf(accountId, version), accountId, version, threshold, changedAtMs: nowMs });
      const breachedNow = checkBreach(document, month, nowMs, nowMs) !== undefined;
      return {
        next: document,
        result: { ok: true, threshold, timeZone: account.timeZone, changed: true, breachedNow, outbox: account.outbox, alertHeadroomMinor: alertHeadroomMinor(document, policy, nowMs) },
      };
    },
  };
}

export interface ClearThresholdResult {
  cleared: boolean;
  outbox: OutboxEntry[];
}

/** Removes the threshold (a new threshold version, so a later threshold is a new one). Idempotent. */
export function clearThreshold(accountId: string, nowMs: number): AccountUpdate<ClearThresholdResult> {
  return {
    months: () => [],
    apply: (current) => {
      if (!current?.account.threshold) return { next: undefined, result: { cleared: false, outbox: current?.account.outbox ?? [] } };
      const { account } = current;
      const version = account.thresholdVersion + 1;
      account.threshold = undefined;
      delete account.threshold;
      account.thresholdVersion = version;
      account.updatedAtMs = nowMs;
      account.outbox.push({ kind: 'threshold-changed', id: thresholdEventIdOf(accountId, version), accountId, version, changedAtMs: nowMs });
      return { next: current, result: { cleared: true, outbox: account.outbox } };
    },
  };
}

/** Removes confirmed-published entries from the outbox. */
export function markPublished(ids: readonly string[]): AccountUpdate<number> {
  const published = new Set(ids);
  return {
    months: () => [],
    apply: (current) => {
      if (!current) return { next: undefined, result: 0 };
      const remaining = current.account.outbox.filter((entry) => !published.has(entry.id));
      const removed = current.account.outbox.length - remaining.length;
      if (removed === 0) return { next: undefined, result: 0 };
      current.account.outbox = remaining;
      return { next: current, result: removed };
    },
  };
}

/** The outbox as it is (for the sweep): writes nothing. */
export function readOutbox(): AccountUpdate<OutboxEntry[]> {
  return { months: () => [], apply: (current) => ({ next: undefined, result: current?.account.outbox ?? [] }) };
}

export interface MonthlySpendView {
  month: MonthKey;
  timeZone: string;
  currency?: string;
  totalMinor: number;
  transactionCount: number;
  /** The threshold that applies to the month, if any. */
  threshold?: ThresholdRecord;
  remainingMinor?: number;
  breached: boolean;
  /** Event time of the newest transaction counted; undefined when nothing. */
  asOfMs?: number;
}

/** What the API shows for one month of an account (which may not exist yet). */
export function monthlySpendView(
  account: Pick<AccountRecord, 'timeZone' | 'currency' | 'threshold'> | undefined,
  record: Pick<MonthRecord, 'totalMinor' | 'transactionCount' | 'newestEventAtMs'> | undefined,
  month: MonthKey,
  policy: BillingPolicy,
): MonthlySpendView {
  const threshold = account?.threshold && month >= account.threshold.effectiveFromMonth ? account.threshold : undefined;
  const totalMinor = record?.totalMinor ?? 0;
  return {
    month,
    timeZone: timeZoneOf(account, policy),
    currency: account?.currency,
    totalMinor,
    transactionCount: record?.transactionCount ?? 0,
    threshold,
    remainingMinor: threshold ? Math.max(0, threshold.amountMinor - totalMinor) : undefined,
    breached: threshold !== undefined && totalMinor >= threshold.amountMinor,
    asOfMs: record && record.newestEventAtMs > 0 ? record.newestEventAtMs : undefined,
  };
}
