import {
  CustomerSpendWindow,
  IngestedTransaction,
  type CustomerSpendBatch,
  type TransactionBatch,
} from '@tollstream/contracts';

/**
 * One contribution to an account's spend, keyed for the ledger: a window result (a higher revision
 * of the same window replaces the lower: amountMinor is the window's full value) or a transaction
 * that came too late for any window (applied once).
 */
export interface SpendEntry {
  accountId: string;
  currency: string;
  /** Identity in the account's ledger: "p<partition>/<startMs>-<endMs>" or "t:<station>/<transaction>" (escaped). */
  ledgerKey: string;
  revision: number;
  amountMinor: number;
  transactionCount: number;
  /** The instant whose calendar month (account time zone) the spend counts in: window start, or the late transaction's time. */
  monthInstantMs: number;
  /** Event time of the newest transaction: the breach time when this entry makes the total reach the threshold. */
  occurredAtMs: number;
  /** The input, for dead letters. */
  original?: () => Uint8Array;
  /** Result id or transaction identity, for logs and dead letters. */
  sourceId: string;
}

export interface InvalidSpendInput {
  sourceId: string;
  reason: string;
  original: Uint8Array;
}

export interface ParsedSpend {
  entries: SpendEntry[];
  invalid: InvalidSpendInput[];
  /** Late transactions without an account (plate-only passes): no spend. */
  withoutAccount: number;
}

/** Largest amount of one window or transaction billing accepts (100 billion minor units); more is corrupt input. */
export const MAX_ENTRY_AMOUNT_MINOR = 100_000_000_000;

const CURRENCY = /^[A-Z]{3}$/;
const WINDOW_IDENTITY = /^p\d+\/-?\d+--?\d+$/;

/** Escapes everything outside [A-Za-z0-9_-] as %XX (UTF-8): ledger keys stay valid MongoDB field names. */
export function escapeKeyPart(text: string): string {
  let escaped = '';
  for (const byte of new TextEncoder().encode(text)) {
    const char = String.fromCharCode(byte);
    escaped += /[A-Za-z0-9_-]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return escaped;
}

/** The window results of a spend batch as ledger entries; malformed results are returned as invalid, with the reason. */
export function entriesOfSpendBatch(batch: CustomerSpendBatch): ParsedSpend {
  const parsed: ParsedSpend = { entries: [], invalid: [], withoutAccount: 0 };
  for (const window of batch.windows) {
    const problem = problemOfWindow(window);
    if (problem) {
      parsed.invalid.push({ sourceId: window.resultId.slice(0, 200), reason: problem, original: CustomerSpendWindow.encode(window).finish() });
      continue;
    }
    const prefix = `spend/${window.accountId}/${window.currency}/`;
    const suffix = `/r${window.revision}`;
    parsed.entries.push({
      accountId: window.accountId,
      currency: window.currency,
      ledgerKey: window.resultId.slice(prefix.length, window.resultId.length - suffix.length),
      revision: window.revision,
      amountMinor: window.amountMinor,
      transactionCount: window.transactionCount,
      monthInstantMs: window.windowStart?.getTime() ?? 0,
      occurredAtMs: window.lastOccurredAt?.getTime() ?? window.windowStart?.getTime() ?? 0,
      original: () => CustomerSpendWindow.encode(window).finish(),
      sourceId: window.resultId,
    });
  }
  return parsed;
}

function problemOfWindow(window: CustomerSpendWindow): string | undefined {
  if (!window.accountId) return 'account_id is empty';
  if (!CURRENCY.test(window.currency)) return `currency ${JSON.stringify(window.currency.slice(0, 10))} is not an ISO 4217 code`;
  if (!Number.isSafeInteger(window.amountMinor) || window.amountMinor < 0 || window.amountMinor > MAX_ENTRY_AMOUNT_MINOR) {
    return `amount_minor ${window.amountMinor} is out of range 0..${MAX_ENTRY_AMOUNT_MINOR}`;
  }
  if (!(window.revision >= 1)) return 'revision must be at least 1';
  if (!window.windowStart || Number.isNaN(window.windowStart.getTime())) return 'window_start is missing';
  const prefix = `spend/${window.accountId}/${window.currency}/`;
  const suffix = `/r${window.revision}`;
  if (!window.resultId.startsWith(prefix) || !window.resultId.endsWith(suffix) || window.resultId.length <= prefix.length + suffix.length) {
    return `result_id ${JSON.stringify(window.resultId.slice(0, 200))} is not spend/<account>/<currency>/<window>/r<revision> of this result`;
  }
  const identity = window.resultId.slice(prefix.length, window.resultId.length - suffix.length);
  if (!WINDOW_IDENTITY.test(identity)) return `window identity ${JSON.stringify(identity.slice(0, 100))} is not p<partition>/<startMs>-<endMs>`;
  return undefined;
}

/** Transactions too late for any spend window, as ledger entries (identity: station + transaction id, applied once). */
export function entriesOfLateBatch(batch: TransactionBatch): ParsedSpend {
  const parsed: ParsedSpend = { entries: [], invalid: [], withoutAccount: 0 };
  for (const ingested of batch.transactions) {
    const transaction = ingested.transaction;
    if (!transaction) {
      parsed.invalid.push({ sourceId: batch.batchId, reason: 'a record without a transaction', original: IngestedTransaction.encode(ingested).finish() });
      continue;
    }
    if (!transaction.accountId) {
      parsed.withoutAccount++;
      continue;
    }
    const sourceId = `${transaction.stationId}/${transaction.transactionId}`;
    const occurredAtMs = transaction.occurredAt?.getTime();
    let problem: string | undefined;
    if (!transaction.stationId || !transaction.transactionId) problem = 'station_id or transaction_id is empty';
    else if (!CURRENCY.test(transaction.currency)) problem = 'currency is not an ISO 4217 code';
    else if (!Number.isSafeInteger(transaction.amountMinor) || transaction.amountMinor < 0 || transaction.amountMinor > MAX_ENTRY_AMOUNT_MINOR) {
      problem = `amount_minor ${transaction.amountMinor} is out of range`;
    } else if (occurredAtMs === undefined || Number.isNaN(occurredAtMs)) problem = 'occurred_at is missing';
    if (problem) {
      parsed.invalid.push({ sourceId: sourceId.slice(0, 200), reason: problem, original: IngestedTransaction.encode(ingested).finish() });
      continue;
    }
    parsed.entries.push({
      accountId: transaction.accountId,
      currency: transaction.currency,
      ledgerKey: `t:${escapeKeyPart(transaction.stationId)}/${escapeKeyPart(transaction.transactionId)}`,
      revision: 1,
      amountMinor: transaction.amountMinor,
      transactionCount: 1,
      monthInstantMs: occurredAtMs as number,
      occurredAtMs: occurredAtMs as number,
      original: () => IngestedTransaction.encode(ingested).finish(),
      sourceId,
    });
  }
  return parsed;
}
