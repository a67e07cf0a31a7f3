/**
 * The accounts of one spend shard and their open months, in columns (typed arrays) instead of an
 * object per account and per month (ADR 0013 amendment 5).
 *
 * Why: as objects, an account with one month took ~490 bytes of heap (a V8 object with boxed
 * doubles, a months array sized for 17, a month object, its month string) and a million accounts
 * were ~3 million old-space objects for every major collection to trace. In columns a million
 * accounts with a month each take ~165 bytes an account: the id (~50 bytes of heap), its index
 * entry (4-8 bytes off the heap), ~40 bytes of account columns, ~45 of month columns, and thresholds
 * apart (most accounts have none). Accounts are never removed (an account's slot is its insertion order, which
 * snapshots keep); months and thresholds are, into free lists.
 *
 * Months are numbers here (year * 12 + month - 1, so they order like "YYYY-MM"); `MonthKeys` turns
 * them into the read model's "YYYY-MM" and back.
 */
import { mixedHashOfAccount } from '@tollstream/messaging';
import type { MonthKey, ThresholdRecord } from '@tollstream/stores';
import { MONTH_PATTERN } from './months';

type Column = Float64Array | Uint32Array | Int32Array | Uint16Array;

/** A copy of the column with room for `capacity` (the rest zero). */
export function grown<T extends Column>(column: T, capacity: number): T {
  const next = new (column.constructor as new (length: number) => T)(capacity);
  next.set(column);
  return next;
}

/** Strings kept once, numbered from 1 (0 = none): time zones and currencies, a handful per shard. */
export class StringTable {
  private readonly values: string[] = [''];
  private readonly numbers = new Map<string, number>();

  numberOf(value: string): number {
    let number = this.numbers.get(value);
    if (number === undefined) {
      number = this.values.length;
      if (number > 0xffff) throw new Error(`more than 65,535 distinct values (${JSON.stringify(value.slice(0, 40))})`);
      this.values.push(value);
      this.numbers.set(value, number);
    }
    return number;
  }

  stringOf(number: number): string | undefined {
    return number === 0 ? undefined : this.values[number];
  }
}

/** "YYYY-MM" ↔ year * 12 + month - 1, remembered both ways (a shard sees few months). */
export class MonthKeys {
  private readonly numbers = new Map<string, number>();
  private readonly texts = new Map<number, string>();

  numberOf(month: MonthKey): number {
    let number = this.numbers.get(month);
    if (number === undefined) {
      const match = MONTH_PATTERN.exec(month);
      if (!match) throw new Error(`not a month: ${JSON.stringify(month)}`);
      number = Number(match[1]) * 12 + Number(match[2]) - 1;
      this.numbers.set(month, number);
      this.texts.set(number, month);
    }
    return number;
  }

  textOf(number: number): MonthKey {
    let text = this.texts.get(number);
    if (text === undefined) {
      text = `${String(Math.floor(number / 12)).padStart(4, '0')}-${String((number % 12) + 1).padStart(2, '0')}`;
      this.texts.set(number, text);
      this.numbers.set(text, number);
    }
    return text;
  }
}

export const NO_MONTH = -1;
/** Columns grow by a quarter: at most a fifth of a column is room not yet used (a million accounts: ~20 MB, not ~50). */
const GROWTH = 1.25;

/**
 * Account id → slot, open addressing over one Int32Array (slot + 1; 0 = empty), linear probing, at
 * most half full. Why not a Map: at a million accounts a Map's table was ~30 MiB of heap (three
 * words an entry plus its buckets) and a copy of it at each doubling; this is 4-8 MiB off the heap,
 * and a lookup was faster (the account ids themselves are the table's `ids`, kept once).
 */
export class AccountIndex {
  private table = new Int32Array(64);
  private mask = 63;

  constructor(private readonly ids: readonly string[]) {}

  get(accountId: string): number | undefined {
    const { table, mask, ids } = this;
    for (let at = mixedHashOfAccount(accountId) & mask; ; at = (at + 1) & mask) {
      const entry = table[at];
      if (entry === 0) return undefined;
      if (ids[entry - 1] === accountId) return entry - 1;
    }
  }

  /** Indexes `ids[slot]` (not yet indexed). */
  add(slot: number): void {
    if ((slot + 1) * 2 > this.table.length) this.rehash(this.table.length * 2); // places every id, this one too
    else this.place(slot);
  }

  private place(slot: number): void {
    const { table, mask } = this;
    let at = mixedHashOfAccount(this.ids[slot]) & mask;
    while (table[at] !== 0) at = (at + 1) & mask;
    table[at] = slot + 1;
  }

  private rehash(capacity: number): void {
    this.table = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let slot = 0; slot < this.ids.length; slot++) this.place(slot);
  }
}

export class AccountTable {
  private readonly ids: string[] = [];
  private readonly slots = new AccountIndex(this.ids);
  readonly zones = new StringTable();
  readonly currencies = new StringTable();
  readonly months = new MonthKeys();
  private capacity = 0;
  private monthCapacity = 0;
  private thresholdCapacity = 0;
  /** Threshold entries ever used (entry 0 is "none"); cleared ones are reused. */
  private thresholdsAllocated = 1;
  private readonly freeThresholds: number[] = [];
  /** Month slots ever used (the pool's high-water mark); freed ones are on the free list. */
  private monthsAllocated = 0;
  private monthsUsed = 0;
  private freeMonth = NO_MONTH;

  // Per account (slot).
  zone = new Uint16Array(0);
  /** 0 = none yet (the first spend or threshold sets it). */
  currency = new Uint16Array(0);
  thresholdVersion = new Uint32Array(0);
  position = new Float64Array(0);
  createdAtMs = new Float64Array(0);
  updatedAtMs = new Float64Array(0);
  /** The account's threshold entry; 0 = none (most accounts: a threshold's columns are held only by those with one). */
  threshold = new Uint32Array(0);
  /** First (oldest) open month, a chain ordered by month. */
  firstMonth = new Int32Array(0);
  /** The number of the last live snapshot that encoded the account (copy on write). */
  encodedIn = new Uint32Array(0);

  // Per threshold entry (a pool; entry 0 unused).
  thresholdAmount = new Float64Array(0);
  thresholdCurrency = new Uint16Array(0);
  thresholdOfVersion = new Uint32Array(0);
  thresholdSetAtMs = new Float64Array(0);
  thresholdFromMonth = new Uint32Array(0);

  // Per month (a pool shared by the shard's accounts).
  month = new Uint32Array(0);
  totalMinor = new Float64Array(0);
  transactionCount = new Float64Array(0);
  alertedThresholdVersion = new Uint32Array(0);
  newestEventAtMs = new Float64Array(0);
  monthPosition = new Float64Array(0);
  nextMonth = new Int32Array(0);

  get size(): number {
    return this.ids.length;
  }

  get openMonths(): number {
    return this.monthsUsed;
  }

  slotOf(accountId: string): number | undefined {
    return this.slots.get(accountId);
  }

  idOf(slot: number): string {
    return this.ids[slot];
  }

  add(accountId: string, timeZone: string, position: number, createdAtMs: number): number {
    const slot = this.ids.length;
    if (slot === this.capacity) this.growAccounts(Math.max(64, Math.ceil(this.capacity * GROWTH)));
    this.ids.push(accountId);
    this.slots.add(slot);
    this.zone[slot] = this.zones.numberOf(timeZone);
    this.currency[slot] = 0;
    this.thresholdVersion[slot] = 0;
    this.position[slot] = position;
    this.createdAtMs[slot] = createdAtMs;
    this.updatedAtMs[slot] = createdAtMs;
    this.threshold[slot] = 0;
    this.firstMonth[slot] = NO_MONTH;
    this.encodedIn[slot] = 0;
    return slot;
  }

  /** Room for `accounts` in all (a restore knows how many come). */
  reserve(accounts: number): void {
    if (accounts > this.capacity) this.growAccounts(accounts);
  }

  timeZoneOf(slot: number): string {
    return this.zones.stringOf(this.zone[slot]) as string;
  }

  currencyOf(slot: number): string | undefined {
    return this.currencies.stringOf(this.currency[slot]);
  }

  hasThreshold(slot: number): boolean {
    return this.threshold[slot] !== 0;
  }

  thresholdOf(slot: number): ThresholdRecord | undefined {
    const t = this.threshold[slot];
    if (t === 0) return undefined;
    return {
      amountMinor: this.thresholdAmount[t],
      currency: this.currencies.stringOf(this.thresholdCurrency[t]) as string,
      version: this.thresholdOfVersion[t],
      setAtMs: this.thresholdSetAtMs[t],
      effectiveFromMonth: this.months.textOf(this.thresholdFromMonth[t]),
    };
  }

  setThreshold(slot: number, threshold: ThresholdRecord | undefined): void {
    let t = this.threshold[slot];
    if (!threshold) {
      if (t !== 0) this.freeThresholds.push(t);
      this.threshold[slot] = 0;
      return;
    }
    if (t === 0) {
      t = this.freeThresholds.pop() ?? this.thresholdsAllocated++;
      if (t >= this.thresholdCapacity) this.growThresholds(Math.max(64, Math.ceil(this.thresholdCapacity * GROWTH)));
      this.threshold[slot] = t;
    }
    this.thresholdAmount[t] = threshold.amountMinor;
    this.thresholdCurrency[t] = this.currencies.numberOf(threshold.currency);
    this.thresholdOfVersion[t] = threshold.version;
    this.thresholdSetAtMs[t] = threshold.setAtMs;
    this.thresholdFromMonth[t] = this.months.numberOf(threshold.effectiveFromMonth);
  }

  /** The account's open month `month` (a number), or NO_MONTH. */
  findMonth(slot: number, month: number): number {
    for (let m = this.firstMonth[slot]; m !== NO_MONTH; m = this.nextMonth[m]) {
      const at = this.month[m];
      if (at === month) return m;
      if (at > month) return NO_MONTH;
    }
    return NO_MONTH;
  }

  /** A new open month of the account, zero, in its place in the chain. */
  addMonth(slot: number, month: number, position: number): number {
    let m = this.freeMonth;
    if (m !== NO_MONTH) {
      this.freeMonth = this.nextMonth[m];
    } else {
      if (this.monthsAllocated === this.monthCapacity) this.growMonths(Math.max(64, Math.ceil(this.monthCapacity * GROWTH)));
      m = this.monthsAllocated++;
    }
    this.monthsUsed++;
    this.month[m] = month;
    this.totalMinor[m] = 0;
    this.transactionCount[m] = 0;
    this.alertedThresholdVersion[m] = 0;
    this.newestEventAtMs[m] = 0;
    this.monthPosition[m] = position;
    let previous = NO_MONTH;
    let next = this.firstMonth[slot];
    while (next !== NO_MONTH && this.month[next] < month) {
      previous = next;
      next = this.nextMonth[next];
    }
    this.nextMonth[m] = next;
    if (previous === NO_MONTH) this.firstMonth[slot] = m;
    else this.nextMonth[previous] = m;
    return m;
  }

  /** Drops the account's oldest open month. */
  dropFirstMonth(slot: number): void {
    const m = this.firstMonth[slot];
    if (m === NO_MONTH) return;
    this.firstMonth[slot] = this.nextMonth[m];
    this.nextMonth[m] = this.freeMonth;
    this.freeMonth = m;
    this.monthsUsed--;
  }

  private growAccounts(capacity: number): void {
    this.zone = grown(this.zone, capacity);
    this.currency = grown(this.currency, capacity);
    this.thresholdVersion = grown(this.thresholdVersion, capacity);
    this.position = grown(this.position, capacity);
    this.createdAtMs = grown(this.createdAtMs, capacity);
    this.updatedAtMs = grown(this.updatedAtMs, capacity);
    this.threshold = grown(this.threshold, capacity);
    this.firstMonth = grown(this.firstMonth, capacity);
    this.encodedIn = grown(this.encodedIn, capacity);
    this.capacity = capacity;
  }

  private growThresholds(capacity: number): void {
    this.thresholdAmount = grown(this.thresholdAmount, capacity);
    this.thresholdCurrency = grown(this.thresholdCurrency, capacity);
    this.thresholdOfVersion = grown(this.thresholdOfVersion, capacity);
    this.thresholdSetAtMs = grown(this.thresholdSetAtMs, capacity);
    this.thresholdFromMonth = grown(this.thresholdFromMonth, capacity);
    this.thresholdCapacity = capacity;
  }

  private growMonths(capacity: number): void {
    this.month = grown(this.month, capacity);
    this.totalMinor = grown(this.totalMinor, capacity);
    this.transactionCount = grown(this.transactionCount, capacity);
    this.alertedThresholdVersion = grown(this.alertedThresholdVersion, capacity);
    this.newestEventAtMs = grown(this.newestEventAtMs, capacity);
    this.monthPosition = grown(this.monthPosition, capacity);
    this.nextMonth = grown(this.nextMonth, capacity);
    this.monthCapacity = capacity;
  }
}
