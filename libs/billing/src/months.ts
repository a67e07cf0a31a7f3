/** Calendar months ("YYYY-MM") in IANA time zones. */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterOf(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

export function isValidTimeZone(timeZone: string): boolean {
  if (!timeZone) return false;
  try {
    formatterOf(timeZone);
    return true;
  } catch {
    return false;
  }
}

/**
 * Months already computed, by zone and exact instant: window results of one round share few window
 * starts (1-second windows), and Intl formatting is the costly part of applying a result. Exact
 * (keyed by the instant itself, no bucketing), bounded by clearing.
 */
const monthCache = new Map<string, Map<number, string>>();
const MONTH_CACHE_LIMIT = 50_000;

/** The calendar month of an instant in a time zone, "YYYY-MM". */
export function monthOf(epochMs: number, timeZone: string): string {
  let zoneCache = monthCache.get(timeZone);
  if (!zoneCache) monthCache.set(timeZone, (zoneCache = new Map()));
  let month = zoneCache.get(epochMs);
  if (month === undefined) {
    month = formatMonth(epochMs, timeZone);
    if (zoneCache.size >= MONTH_CACHE_LIMIT) zoneCache.clear();
    zoneCache.set(epochMs, month);
  }
  return month;
}

function formatMonth(epochMs: number, timeZone: string): string {
  let year = '';
  let month = '';
  for (const part of formatterOf(timeZone).formatToParts(epochMs)) {
    if (part.type === 'year') year = part.value;
    else if (part.type === 'month') month = part.value;
  }
  return `${year.padStart(4, '0')}-${month}`;
}

export const MONTH_PATTERN = /^(\d{4})-(0[1-9]|1[0-2])$/;

/**
 * An instant certainly after the month ended in every time zone: the UTC start of the next month
 * plus 14 hours (the largest zone offset). Used to decide when a month's ledger may be dropped.
 */
export function monthCertainlyOverAtMs(month: string): number {
  const match = MONTH_PATTERN.exec(month);
  if (!match) throw new Error(`not a month: ${month}`);
  return monthNumberOverAtMs(Number(match[1]) * 12 + Number(match[2]) - 1);
}

/** monthCertainlyOverAtMs of a month as a number (year * 12 + month - 1, the billing state's months). */
export const monthNumberOverAtMs = (month: number): number => Date.UTC(Math.floor(month / 12), (month % 12) + 1, 1) + 14 * 3_600_000;
