/**
 * Billing's state machine for ONE spend shard (ADR 0013): the accounts of the shard, their
 * thresholds and monthly totals, in memory, changed by the records of the shard's subject
 * (tolls.agg.spend.<shard>) one at a time in stream order. No I/O and no clock: "now" is the log
 * time of the record being applied (its broker timestamp, the same on every replay), so the same
 * records from the same state give the same outputs, alert ids and contents included. Recovery is a
 * snapshot plus a replay of the records after it, as for the windower (ADR 0006).
 *
 * What it remembers, and why that is bounded:
 * - per account: currency, zone, threshold and version, and the months that can still change
 *   (a month is dropped `ledgerRetentionMs` after it is over everywhere; the read model keeps it);
 * - per source partition: the position of the last spend batch applied (the windower's chain of
 *   batches per partition and shard: a repeat is recognised by its position, a batch arriving
 *   before its predecessor is held until the predecessor comes), and what was applied for each
 *   window that may still be revised (until the partition's `final_before` passes its end: about
 *   the windower's allowed lateness of results), so an amendment adds only its difference.
 * No per-result ledger for the whole month (ADR 0008's documents grew by one entry per result).
 */
import { IngestedTransaction, type SpendingThresholdCommand } from '@tollstream/contracts';
import type { AccountStateRecord, MonthTotalRecord, SpendingAlertRecord, ThresholdChangeRecord, ThresholdRecord } from '@tollstream/stores';
import { alertIdOf, thresholdEventIdOf, type BillingPolicy, type EntryOutcome } from './account-spend';
import { AccountTable, NO_MONTH } from './account-table';
import { monthNumberOverAtMs, monthOf } from './months';
import { NO_WINDOW, WindowsEndingAt, type AppliedWindow } from './revisable-windows';
import { MAX_ENTRY_AMOUNT_MINOR } from './spend-entries';
import { readSpendBatch, type SpendBatchInput, type SpendWindowInput } from './spend-batch-reader';

/** One month of an account as the state holds it: the read model's record without the account id (kept by the account). */
export type MonthState = Omit<MonthTotalRecord, 'accountId'>;

/**
 * An account as snapshots write it and queries see it: made from the shard's columns when asked
 * (see AccountTable), a copy, never the state itself.
 */
export interface AccountState {
  accountId: string;
  timeZone: string;
  currency?: string;
  threshold?: ThresholdRecord;
  /** Incremented by every change of the threshold (set to another amount, or cleared). */
  thresholdVersion: number;
  /** Months that can still change, oldest first. */
  months: MonthState[];
  /** Shard position of the record that last changed the account (threshold, currency). */
  position: number;
  createdAtMs: number;
  /** Log time of that record (spend changes months, which have their own positions). */
  updatedAtMs: number;
}

/** A spend batch waiting for its predecessor in the partition's chain. */
interface HeldBatch {
  sequence: number;
  logTimeMs: number;
  batch: SpendBatchInput;
}

interface PartitionTrack {
  /** Position of the last batch applied: inputSequence * CHUNKS + chunk; 0 when none yet (before the first). */
  last: number;
  finalBeforeMs: number;
  /** Windows that may still be revised, by window end. */
  windows: Map<number, WindowsEndingAt>;
  held: Map<number, HeldBatch>;
  /** Positions given up waiting for (a gap released after BillingShardOptions.gapTimeoutMs): [after, upTo] exclusive-inclusive. */
  skippedGaps: Array<[after: number, upTo: number, atLogMs: number]>;
}

export interface BillingShardOptions {
  shard: number;
  policy: BillingPolicy;
  /** Largest threshold accepted from a command (the API checks it too). */
  maxThresholdMinor: number;
  /**
   * A batch held for its predecessor longer than this (in the shard's log time) is applied
   * anyway; the predecessor, should it come, is then applied when it comes (never dropped).
   */
  gapTimeoutMs: number;
  /** Batches held per partition at most before the oldest gap is given up. */
  maxHeldBatches: number;
}

export interface ShardDeadLetter {
  reasonCode: string;
  reason: string;
  original: Uint8Array;
  /** Deterministic, for the dead letter's Nats-Msg-Id: a replay stores it once. */
  id: string;
}

export interface ShardOutput {
  alerts: SpendingAlertRecord[];
  thresholdEvents: ThresholdChangeRecord[];
  /** The answer to a threshold command, for its reply subject. */
  commandOutcome?: ThresholdCommandOutcome;
  deadLetters: ShardDeadLetter[];
  outcomes: Partial<Record<ShardOutcome, number>>;
}

/** What a threshold command did (sent to the waiting caller as a SpendingThresholdCommandOutcome). */
export interface ThresholdCommandOutcome {
  replySubject: string;
  commandId: string;
  accountId: string;
  accepted: boolean;
  rejectionField: string;
  rejectionReason: string;
  /** The threshold in force after the command. */
  threshold?: ThresholdRecord;
  changed: boolean;
  breachedNow: boolean;
}

export type ShardOutcome = EntryOutcome | 'late-applied' | 'batch-repeated' | 'batch-held' | 'gap-released' | 'amendment-unapplicable' | 'invalid';

/** Chunks per input sequence in a position (the windower's chunks per input and shard are far fewer). */
const CHUNKS = 65_536;
const SNAPSHOT_FORMAT = 1;
const CURRENCY = /^[A-Z]{3}$/;
const ACCOUNT_ID = /^[A-Za-z0-9._:-]{1,64}$/;

const positionOf = (sequence: number, chunk: number): number => sequence * CHUNKS + chunk;

/**
 * A snapshot being encoded while the shard goes on applying records (copy on write): the accounts
 * that existed when it began (slots below `accounts`: accounts are only added) are encoded as they
 * were then. An account about to change before the encoding reached it is encoded first (its
 * pre-image, by slot); encoded accounts carry the snapshot's number (AccountTable.encodedIn).
 */
interface LiveSnapshot {
  number: number;
  accounts: number;
  preImages: Map<number, string>;
}

const describePosition = (position: number): string => `${Math.floor(position / CHUNKS)}/${position % CHUNKS}`;
const NOT_APPLIED = -1;

export class BillingShard {
  private readonly table = new AccountTable();
  private readonly partitions = new Map<number, PartitionTrack>();
  private lastSequenceApplied = 0;
  private lastLogTimeMs = 0;
  /** Slots of the accounts changed since takeChangedRecords(); not part of the state (derived again after a restore). */
  private readonly changed = new Set<number>();
  private live?: LiveSnapshot;
  private snapshotsBegun = 0;

  constructor(private readonly options: BillingShardOptions) {}

  get shard(): number {
    return this.options.shard;
  }

  /** Stream sequence of the last record applied; 0 if none. */
  get lastSequence(): number {
    return this.lastSequenceApplied;
  }

  get accountCount(): number {
    return this.table.size;
  }

  /** Accounts changed since the last takeChangedRecords(). */
  get changedAccounts(): number {
    return this.changed.size;
  }

  get openMonthCount(): number {
    return this.table.openMonths;
  }

  get heldBatches(): number {
    let held = 0;
    for (const track of this.partitions.values()) held += track.held.size;
    return held;
  }

  get revisableWindows(): number {
    let windows = 0;
    for (const track of this.partitions.values()) for (const ending of track.windows.values()) windows += ending.size;
    return windows;
  }

  /** The account as it is now (a copy). */
  account(accountId: string): AccountState | undefined {
    const slot = this.table.slotOf(accountId);
    return slot === undefined ? undefined : this.accountAt(slot);
  }

  /** The read model's record of the account as it is now. */
  accountRecord(accountId: string): AccountStateRecord | undefined {
    const slot = this.table.slotOf(accountId);
    return slot === undefined ? undefined : this.accountRecordAt(slot);
  }

  /** The read model's record of the account's month as it is now (months still open only). */
  monthRecord(accountId: string, month: string): MonthTotalRecord | undefined {
    const slot = this.table.slotOf(accountId);
    if (slot === undefined) return undefined;
    const m = this.table.findMonth(slot, this.table.months.numberOf(month));
    return m === NO_MONTH ? undefined : this.monthRecordAt(slot, m);
  }

  /**
   * The read-model records of the accounts changed since the last call: each account's record when
   * it changed after `sincePosition` (zone, currency, threshold), and its months changed after it.
   */
  takeChangedRecords(sincePosition: number): { accounts: AccountStateRecord[]; months: MonthTotalRecord[] } {
    const table = this.table;
    const accounts: AccountStateRecord[] = [];
    const months: MonthTotalRecord[] = [];
    for (const slot of this.changed) {
      if (table.position[slot] > sincePosition) accounts.push(this.accountRecordAt(slot));
      for (let m = table.firstMonth[slot]; m !== NO_MONTH; m = table.nextMonth[m]) {
        if (table.monthPosition[m] > sincePosition) months.push(this.monthRecordAt(slot, m));
      }
    }
    this.changed.clear();
    return { accounts, months };
  }

  /** Marks every account changed after `position` (after a restore: what the read model may lack). */
  markChangedAfter(position: number): void {
    const table = this.table;
    for (let slot = 0; slot < table.size; slot++) {
      let changed = table.position[slot] > position;
      for (let m = table.firstMonth[slot]; !changed && m !== NO_MONTH; m = table.nextMonth[m]) changed = table.monthPosition[m] > position;
      if (changed) this.changed.add(slot);
    }
  }

  /** Applies the spend batch stored at `sequence` (stream sequence) at `logTimeMs`. */
  applySpendBatch(sequence: number, logTimeMs: number, batch: SpendBatchInput): ShardOutput {
    const output = this.begin(sequence, logTimeMs);
    const track = this.track(batch.sourcePartition);
    const position = positionOf(batch.inputSequence, batch.chunk);
    const known = batch.previousInputSequence !== undefined;
    const previous = known ? positionOf(batch.previousInputSequence ?? 0, batch.previousChunk ?? 0) : -1;
    if (position <= track.last) {
      if (this.takeSkipped(track, position)) {
        this.applyBatch(track, batch, logTimeMs, output, sequence);
      } else {
        count(output, 'batch-repeated');
      }
    } else if (!known || previous <= track.last) {
      // In order (previous is the last applied), or the chain is unknown (a windower restored from
      // a snapshot without chain): positions only. A first batch whose predecessor was never seen
      // (retention cut the stream's beginning) waits like any gap, then the gap timeout releases it.
      this.applyBatch(track, batch, logTimeMs, output, sequence);
      track.last = position;
      this.applyHeldInOrder(track, output);
    } else if (!track.held.has(position)) {
      track.held.set(position, { sequence, logTimeMs, batch });
      count(output, 'batch-held');
    } else {
      count(output, 'batch-repeated');
    }
    this.releaseOverdueGaps(track, logTimeMs, output);
    return output;
  }

  /** Applies a threshold command stored at `sequence`; the log time is when it was set. */
  applyThresholdCommand(sequence: number, logTimeMs: number, command: SpendingThresholdCommand, original: Uint8Array): ShardOutput {
    const output = this.begin(sequence, logTimeMs);
    const reject = (field: string, reason: string, deadLetter: boolean): ShardOutput => {
      output.commandOutcome = this.outcome(command, { accepted: false, rejectionField: field, rejectionReason: reason });
      if (deadLetter) output.deadLetters.push({ reasonCode: 'INVALID_THRESHOLD_COMMAND', reason: `${field}: ${reason}`, original, id: `billing/${this.shard}/${sequence}/command` });
      count(output, 'invalid');
      return output;
    };
    if (!ACCOUNT_ID.test(command.accountId)) return reject('account_id', 'must be 1-64 of letters, digits, . _ : -', true);
    const threshold = command.threshold;
    if (threshold) {
      if (!CURRENCY.test(threshold.currency)) return reject('threshold.currency', 'must be an ISO 4217 code', true);
      if (!Number.isSafeInteger(threshold.amountMinor) || threshold.amountMinor < 1 || threshold.amountMinor > this.options.maxThresholdMinor) {
        return reject('threshold.amount_minor', `must be 1..${this.options.maxThresholdMinor}`, true);
      }
    }
    const table = this.table;
    const existing = table.slotOf(command.accountId);
    if (!threshold) {
      if (existing === undefined || !table.hasThreshold(existing)) {
        output.commandOutcome = this.outcome(command, { accepted: true, changed: false });
        return output;
      }
      this.beforeChange(existing);
      const version = ++table.thresholdVersion[existing];
      table.setThreshold(existing, undefined);
      this.touchAccount(existing, sequence, logTimeMs);
      output.thresholdEvents.push({ kind: 'threshold-changed', id: thresholdEventIdOf(command.accountId, version), accountId: command.accountId, version, changedAtMs: logTimeMs });
      output.commandOutcome = this.outcome(command, { accepted: true, changed: true });
      return output;
    }
    const existingCurrency = existing === undefined ? undefined : table.currencyOf(existing);
    if (existingCurrency !== undefined && existingCurrency !== threshold.currency) {
      return reject('threshold.currency', `must be the account's currency ${existingCurrency}`, false);
    }
    const slot = existing ?? this.newAccount(command.accountId, logTimeMs);
    const current = table.thresholdOf(slot);
    const month = monthOf(logTimeMs, table.timeZoneOf(slot));
    const record = table.findMonth(slot, table.months.numberOf(month));
    if (current && current.amountMinor === threshold.amountMinor && current.currency === threshold.currency) {
      // The same amount again (often a client's retry after a lost reply): report the alert as it stands.
      const standing = record !== NO_MONTH && table.alertedThresholdVersion[record] === current.version;
      output.commandOutcome = this.outcome(command, { accepted: true, changed: false, threshold: current, breachedNow: standing });
      return output;
    }
    this.beforeChange(slot);
    const version = ++table.thresholdVersion[slot];
    if (table.currency[slot] === 0) table.currency[slot] = table.currencies.numberOf(threshold.currency);
    const set: ThresholdRecord = { amountMinor: threshold.amountMinor, currency: threshold.currency, version, setAtMs: logTimeMs, effectiveFromMonth: month };
    table.setThreshold(slot, set);
    this.touchAccount(slot, sequence, logTimeMs);
    output.thresholdEvents.push({ kind: 'threshold-changed', id: thresholdEventIdOf(command.accountId, version), accountId: command.accountId, version, threshold: set, changedAtMs: logTimeMs });
    const alert = record !== NO_MONTH ? this.checkBreach(slot, record, logTimeMs, logTimeMs, sequence) : undefined;
    if (alert) output.alerts.push(alert);
    output.commandOutcome = this.outcome(command, { accepted: true, changed: true, threshold: set, breachedNow: alert !== undefined });
    return output;
  }

  /** A record that is neither a spend batch nor a threshold command (or cannot be decoded). */
  rejectRecord(sequence: number, logTimeMs: number, reasonCode: string, reason: string, original: Uint8Array): ShardOutput {
    const output = this.begin(sequence, logTimeMs);
    output.deadLetters.push({ reasonCode, reason, original, id: `billing/${this.shard}/${sequence}/record` });
    count(output, 'invalid');
    return output;
  }

  /**
   * Spend (minor units) that would raise the account's next alert in the month of `nowMs`; undefined
   * when none can come this month. Only for ordering and display, never for a decision.
   */
  alertHeadroomMinor(accountId: string, nowMs: number): number | undefined {
    const table = this.table;
    const slot = table.slotOf(accountId);
    const t = slot === undefined ? 0 : table.threshold[slot];
    if (slot === undefined || t === 0) return undefined;
    const amount = table.thresholdAmount[t];
    const month = table.months.numberOf(monthOf(nowMs, table.timeZoneOf(slot)));
    if (month < table.thresholdFromMonth[t]) return amount;
    const record = table.findMonth(slot, month);
    if (record !== NO_MONTH && table.alertedThresholdVersion[record] === table.thresholdOfVersion[t]) return undefined;
    return Math.max(0, amount - (record === NO_MONTH ? 0 : table.totalMinor[record]));
  }

  private begin(sequence: number, logTimeMs: number): ShardOutput {
    if (sequence <= this.lastSequenceApplied) {
      throw new Error(`record ${sequence} of spend shard ${this.shard} was already applied (last ${this.lastSequenceApplied})`);
    }
    this.lastSequenceApplied = sequence;
    // Log time only moves forward here (broker timestamps of one stream do; a clock step back must not reopen months).
    this.lastLogTimeMs = Math.max(this.lastLogTimeMs, logTimeMs);
    return { alerts: [], thresholdEvents: [], deadLetters: [], outcomes: {} };
  }

  private outcome(command: SpendingThresholdCommand, fields: Partial<ThresholdCommandOutcome>): ThresholdCommandOutcome {
    return {
      replySubject: command.replySubject,
      commandId: command.commandId,
      accountId: command.accountId,
      accepted: false,
      rejectionField: '',
      rejectionReason: '',
      changed: false,
      breachedNow: false,
      ...fields,
    };
  }

  private track(partition: number): PartitionTrack {
    let track = this.partitions.get(partition);
    if (!track) {
      track = { last: 0, finalBeforeMs: Number.MIN_SAFE_INTEGER, windows: new Map(), held: new Map(), skippedGaps: [] };
      this.partitions.set(partition, track);
    }
    return track;
  }

  private applyHeldInOrder(track: PartitionTrack, output: ShardOutput): void {
    for (;;) {
      let next: [number, HeldBatch] | undefined;
      for (const [position, held] of track.held) {
        const previous = positionOf(held.batch.previousInputSequence ?? 0, held.batch.previousChunk ?? 0);
        if (previous <= track.last) {
          next = [position, held];
          break;
        }
      }
      if (!next) return;
      track.held.delete(next[0]);
      if (next[0] > track.last) {
        this.applyBatch(track, next[1].batch, next[1].logTimeMs, output, next[1].sequence);
        track.last = next[0];
      } else {
        count(output, 'batch-repeated');
      }
    }
  }

  /** Gives up waiting for predecessors that did not come in time: the held batches are applied in position order. */
  private releaseOverdueGaps(track: PartitionTrack, logTimeMs: number, output: ShardOutput): void {
    if (track.held.size === 0) return;
    let oldest = Number.MAX_SAFE_INTEGER;
    for (const held of track.held.values()) oldest = Math.min(oldest, held.logTimeMs);
    if (logTimeMs - oldest < this.options.gapTimeoutMs && track.held.size <= this.options.maxHeldBatches) return;
    const positions = [...track.held.keys()].sort((a, b) => a - b);
    const first = track.held.get(positions[0]) as HeldBatch;
    const previous = positionOf(first.batch.previousInputSequence ?? 0, first.batch.previousChunk ?? 0);
    // The batches between the last applied and the first held are applied whenever they come.
    track.skippedGaps.push([track.last, previous, logTimeMs]);
    count(output, 'gap-released');
    track.last = previous;
    this.applyHeldInOrder(track, output);
    if (track.held.size > 0) this.releaseOverdueGaps(track, logTimeMs, output);
  }

  private takeSkipped(track: PartitionTrack, position: number): boolean {
    // Forget gaps nobody filled within a day of log time (bounded state).
    track.skippedGaps = track.skippedGaps.filter(([, , atLogMs]) => this.lastLogTimeMs - atLogMs < 86_400_000);
    const index = track.skippedGaps.findIndex(([after, upTo]) => position > after && position <= upTo);
    if (index < 0) return false;
    // Filled once: the rest of the gap stays open, this position is now applied.
    const [after, upTo, atLogMs] = track.skippedGaps[index];
    track.skippedGaps.splice(index, 1, [after, position - 1, atLogMs], [position, upTo, atLogMs]);
    return true;
  }

  private applyBatch(track: PartitionTrack, batch: SpendBatchInput, logTimeMs: number, output: ShardOutput, sequence: number): void {
    const { windows, lateTransactions } = batch;
    for (let index = 0; index < windows.length; index++) this.applyWindow(track, batch, windows[index], logTimeMs, output, sequence, index);
    for (let index = 0; index < lateTransactions.length; index++) this.applyLate(lateTransactions[index], logTimeMs, output, sequence, index);
    const finalBeforeMs = batch.finalBeforeMs;
    if (finalBeforeMs !== undefined && finalBeforeMs > track.finalBeforeMs) {
      track.finalBeforeMs = finalBeforeMs;
      for (const endMs of track.windows.keys()) if (endMs <= finalBeforeMs) track.windows.delete(endMs);
    }
  }

  private applyWindow(track: PartitionTrack, batch: SpendBatchInput, window: SpendWindowInput, logTimeMs: number, output: ShardOutput, sequence: number, index: number): void {
    const problem = problemOfWindow(window);
    const startMs = window.windowStartMs ?? 0;
    const endMs = window.windowEndMs ?? startMs;
    // The window as it came (a serialized CustomerSpendWindow), for a dead letter.
    const original = () => batch.data.slice(window.byteStart, window.byteEnd);
    if (problem) {
      output.deadLetters.push({ reasonCode: 'INVALID_RESULT', reason: problem, original: original(), id: `billing/${this.shard}/${sequence}/w${index}` });
      count(output, 'invalid');
      return;
    }
    const currency = this.table.currencies.numberOf(window.currency);
    const known = this.table.slotOf(window.accountId);
    const ending = track.windows.get(endMs);
    const applied = known === undefined || ending === undefined ? NO_WINDOW : ending.find(known, startMs, currency);
    // The windows of this end, when they hold what was applied for this window.
    const before = applied === NO_WINDOW ? undefined : ending;
    if (before && before.revision[applied] >= window.revision) {
      count(output, before.revision[applied] === window.revision ? 'duplicate' : 'superseded');
      return;
    }
    if (!before && window.revision > 1 && endMs <= track.finalBeforeMs) {
      // A revision of a window already final: its earlier revision's amount is forgotten, so the
      // difference cannot be known. Only a batch far out of order can do this: dead-lettered, not guessed.
      output.deadLetters.push({
        reasonCode: 'AMENDMENT_AFTER_FINAL',
        reason: `revision ${window.revision} of a window that ended before the partition's final_before`,
        original: original(),
        id: `billing/${this.shard}/${sequence}/w${index}`,
      });
      count(output, 'amendment-unapplicable');
      return;
    }
    const slot = this.addSpend(
      window.accountId,
      window.currency,
      window.amountMinor - (before ? before.amountMinor[applied] : 0),
      window.transactionCount - (before ? before.transactionCount[applied] : 0),
      startMs,
      window.lastOccurredAtMs ?? startMs,
      logTimeMs,
      output,
      sequence,
      `w${index}`,
      original,
      known,
    );
    if (slot === NOT_APPLIED) return;
    count(output, before ? 'amended' : 'applied');
    if (before) {
      before.revision[applied] = window.revision;
      before.amountMinor[applied] = window.amountMinor;
      before.transactionCount[applied] = window.transactionCount;
    } else if (endMs > track.finalBeforeMs) {
      let windows = ending;
      if (!windows) track.windows.set(endMs, (windows = new WindowsEndingAt()));
      windows.add(slot, startMs, currency, window.revision, window.amountMinor, window.transactionCount);
    }
  }

  private applyLate(ingested: IngestedTransaction, logTimeMs: number, output: ShardOutput, sequence: number, index: number): void {
    const transaction = ingested.transaction;
    if (!transaction?.accountId) return; // plate-only passes: no spend
    const occurredAtMs = transaction.occurredAt?.getTime();
    let problem: string | undefined;
    if (!transaction.stationId || !transaction.transactionId) problem = 'station_id or transaction_id is empty';
    else if (!CURRENCY.test(transaction.currency)) problem = 'currency is not an ISO 4217 code';
    else if (!Number.isSafeInteger(transaction.amountMinor) || transaction.amountMinor < 0 || transaction.amountMinor > MAX_ENTRY_AMOUNT_MINOR) problem = `amount_minor ${transaction.amountMinor} is out of range`;
    else if (occurredAtMs === undefined || Number.isNaN(occurredAtMs)) problem = 'occurred_at is missing';
    const original = () => IngestedTransaction.encode(ingested).finish();
    if (problem) {
      output.deadLetters.push({ reasonCode: 'INVALID_RESULT', reason: problem, original: original(), id: `billing/${this.shard}/${sequence}/t${index}` });
      count(output, 'invalid');
      return;
    }
    const at = occurredAtMs as number;
    const slot = this.addSpend(transaction.accountId, transaction.currency, transaction.amountMinor, 1, at, at, logTimeMs, output, sequence, `t${index}`, original);
    if (slot !== NOT_APPLIED) count(output, 'late-applied');
  }

  /** Adds spend (a difference, possibly negative) to the account's month; the account's slot, or NOT_APPLIED when rejected. */
  private addSpend(
    accountId: string,
    currencyCode: string,
    amountMinor: number,
    transactionCount: number,
    monthInstantMs: number,
    occurredAtMs: number,
    logTimeMs: number,
    output: ShardOutput,
    sequence: number,
    item: string,
    original: () => Uint8Array,
    /** The account's slot when the caller has looked it up already (undefined: look it up here). */
    knownSlot?: number,
  ): number {
    const table = this.table;
    // Positions are where the change is applied, the record being applied now: a held batch applied
    // later than it was stored (its `sequence`, which names its dead letters) must not carry a
    // position at or below a flush already made, or the read model would never get its change, and
    // a later change of the same record with a higher position would lose to it.
    const position = this.lastSequenceApplied;
    const slot = knownSlot ?? table.slotOf(accountId) ?? this.newAccount(accountId, logTimeMs);
    this.beforeChange(slot);
    const currency = table.currencies.numberOf(currencyCode);
    if (table.currency[slot] === 0) {
      table.currency[slot] = currency;
      this.touchAccount(slot, position, logTimeMs);
    } else if (table.currency[slot] !== currency) {
      output.deadLetters.push({
        reasonCode: 'CURRENCY_MISMATCH',
        reason: `spend in ${currencyCode} for an account in ${table.currencyOf(slot)}`,
        original: original(),
        id: `billing/${this.shard}/${sequence}/${item}`,
      });
      count(output, 'currency-mismatch');
      return NOT_APPLIED;
    }
    const month = table.months.numberOf(monthOf(monthInstantMs, table.timeZoneOf(slot)));
    let record = table.findMonth(slot, month);
    if (record === NO_MONTH) {
      if (this.isClosed(month)) {
        output.deadLetters.push({
          reasonCode: 'MONTH_CLOSED',
          reason: `spend for ${table.months.textOf(month)}, closed ${Math.round(this.options.policy.ledgerRetentionMs / 86_400_000)} days after it ended`,
          original: original(),
          id: `billing/${this.shard}/${sequence}/${item}`,
        });
        count(output, 'month-sealed');
        return NOT_APPLIED;
      }
      record = table.addMonth(slot, month, position);
    }
    table.totalMinor[record] += amountMinor;
    table.transactionCount[record] += transactionCount;
    if (occurredAtMs > table.newestEventAtMs[record]) table.newestEventAtMs[record] = occurredAtMs;
    table.monthPosition[record] = position;
    this.changed.add(slot);
    const alert = this.checkBreach(slot, record, occurredAtMs, logTimeMs, position);
    if (alert) output.alerts.push(alert);
    this.dropClosedMonths(slot);
    return slot;
  }

  /** Over for longer than the retention: no spend for it is taken any more. */
  private isClosed(month: number): boolean {
    return monthNumberOverAtMs(month) + this.options.policy.ledgerRetentionMs < this.lastLogTimeMs;
  }

  /** Months over for longer than the retention leave memory (the read model keeps them). */
  private dropClosedMonths(slot: number): void {
    const table = this.table;
    for (let first = table.firstMonth[slot]; first !== NO_MONTH && table.nextMonth[first] !== NO_MONTH && this.isClosed(table.month[first]); first = table.firstMonth[slot]) {
      table.dropFirstMonth(slot);
    }
  }

  private checkBreach(slot: number, record: number, breachedAtMs: number, logTimeMs: number, position: number): SpendingAlertRecord | undefined {
    const table = this.table;
    const t = table.threshold[slot];
    if (t === 0 || table.month[record] < table.thresholdFromMonth[t]) return undefined;
    const thresholdMinor = table.thresholdAmount[t];
    const version = table.thresholdOfVersion[t];
    if (table.totalMinor[record] < thresholdMinor || table.alertedThresholdVersion[record] === version) return undefined;
    table.alertedThresholdVersion[record] = version;
    table.monthPosition[record] = position;
    this.changed.add(slot);
    const accountId = table.idOf(slot);
    const month = table.months.textOf(table.month[record]);
    return {
      kind: 'spending-alert',
      id: alertIdOf(accountId, month, version),
      accountId,
      month,
      timeZone: table.timeZoneOf(slot),
      thresholdMinor,
      thresholdVersion: version,
      totalMinor: table.totalMinor[record],
      currency: table.currencies.stringOf(table.thresholdCurrency[t]) as string,
      breachedAtMs,
      raisedAtMs: logTimeMs,
    };
  }

  private newAccount(accountId: string, logTimeMs: number): number {
    const slot = this.table.add(accountId, this.options.policy.operatorTimeZone, this.lastSequenceApplied, logTimeMs);
    if (this.live) this.table.encodedIn[slot] = this.live.number;
    this.changed.add(slot);
    return slot;
  }

  private touchAccount(slot: number, sequence: number, logTimeMs: number): void {
    this.table.position[slot] = sequence;
    this.table.updatedAtMs[slot] = logTimeMs;
    this.changed.add(slot);
  }

  /** The account as snapshots write it (fields in one fixed order, so equal states encode equally). */
  private accountAt(slot: number): AccountState {
    const table = this.table;
    const account: AccountState = { accountId: table.idOf(slot), timeZone: table.timeZoneOf(slot), thresholdVersion: table.thresholdVersion[slot], months: [], position: table.position[slot], createdAtMs: table.createdAtMs[slot], updatedAtMs: table.updatedAtMs[slot] };
    const currency = table.currencyOf(slot);
    if (currency !== undefined) account.currency = currency;
    const threshold = table.thresholdOf(slot);
    if (threshold) account.threshold = threshold;
    for (let m = table.firstMonth[slot]; m !== NO_MONTH; m = table.nextMonth[m]) account.months.push(this.monthStateAt(m));
    return account;
  }

  private monthStateAt(m: number): MonthState {
    const table = this.table;
    return {
      month: table.months.textOf(table.month[m]),
      totalMinor: table.totalMinor[m],
      transactionCount: table.transactionCount[m],
      alertedThresholdVersion: table.alertedThresholdVersion[m],
      newestEventAtMs: table.newestEventAtMs[m],
      position: table.monthPosition[m],
    };
  }

  private accountRecordAt(slot: number): AccountStateRecord {
    const table = this.table;
    return {
      accountId: table.idOf(slot),
      timeZone: table.timeZoneOf(slot),
      currency: table.currencyOf(slot),
      threshold: table.thresholdOf(slot),
      thresholdVersion: table.thresholdVersion[slot],
      position: table.position[slot],
      updatedAtMs: table.updatedAtMs[slot],
    };
  }

  /** The month's state with the account id first (the read model's record, fields in its order). */
  private monthRecordAt(slot: number, m: number): MonthTotalRecord {
    return Object.assign({ accountId: this.table.idOf(slot) }, this.monthStateAt(m));
  }

  /** Restores one account of a snapshot (after those before it: slots keep their order). */
  private restoreAccount(account: AccountState): void {
    const table = this.table;
    const slot = table.add(account.accountId, account.timeZone, account.position, account.createdAtMs);
    table.updatedAtMs[slot] = account.updatedAtMs;
    table.thresholdVersion[slot] = account.thresholdVersion;
    if (account.currency !== undefined) table.currency[slot] = table.currencies.numberOf(account.currency);
    table.setThreshold(slot, account.threshold);
    for (const month of account.months) {
      const m = table.addMonth(slot, table.months.numberOf(month.month), month.position);
      table.totalMinor[m] = month.totalMinor;
      table.transactionCount[m] = month.transactionCount;
      table.alertedThresholdVersion[m] = month.alertedThresholdVersion;
      table.newestEventAtMs[m] = month.newestEventAtMs;
    }
  }

  /**
   * The state as chunks of JSON (a header, then accounts and partitions in batches), in slot order so
   * that a restored shard iterates as the original did. Framing is the snapshot store's. Encoded at
   * once: see `liveSnapshotFrames` for a snapshot encoded while the shard goes on.
   */
  snapshotFrames(accountsPerFrame = 10_000): Array<{ kind: 'header' | 'accounts' | 'partitions'; data: Uint8Array }> {
    return Array.from(this.liveSnapshotFrames(accountsPerFrame));
  }

  /**
   * A snapshot at the current position whose frames may be read while the shard goes on applying
   * records (copy on write: the frames are those of this position whenever they are read). The
   * header and the partitions (small: windows that may still be revised) are encoded now, the
   * accounts as the frames are read. Beginning another snapshot ends this one.
   */
  liveSnapshotFrames(accountsPerFrame = 2_000): Iterable<{ kind: 'header' | 'accounts' | 'partitions'; data: Uint8Array }> {
    const encoder = new TextEncoder();
    const live: LiveSnapshot = { number: ++this.snapshotsBegun, accounts: this.table.size, preImages: new Map() };
    this.live = live;
    const header = encoder.encode(
      JSON.stringify({ format: SNAPSHOT_FORMAT, shard: this.shard, lastSequence: this.lastSequenceApplied, lastLogTimeMs: this.lastLogTimeMs, accounts: live.accounts }),
    );
    const idOf = (slot: number) => this.table.idOf(slot);
    const currencyOf = (currency: number) => this.table.currencies.stringOf(currency) as string;
    const partitions: Uint8Array[] = [];
    for (const [partition, track] of this.partitions) {
      const held = [...track.held.entries()].map(([position, entry]) => ({
        position,
        sequence: entry.sequence,
        logTimeMs: entry.logTimeMs,
        batch: Buffer.from(entry.batch.data).toString('base64'),
      }));
      const windows = [...track.windows].map(([endMs, ending]) => [endMs, ending.entries(idOf, currencyOf)]);
      partitions.push(encoder.encode(JSON.stringify({ partition, last: track.last, finalBeforeMs: track.finalBeforeMs, windows, held, skippedGaps: track.skippedGaps })));
    }
    return this.encodeLive(live, header, partitions, accountsPerFrame);
  }

  /** The frames of a live snapshot: accounts encoded as they are read (see liveSnapshotFrames). */
  private *encodeLive(live: LiveSnapshot, header: Uint8Array, partitions: Uint8Array[], accountsPerFrame: number): Generator<{ kind: 'header' | 'accounts' | 'partitions'; data: Uint8Array }> {
    const encoder = new TextEncoder();
    try {
      yield { kind: 'header', data: header };
      let slot = 0;
      while (slot < live.accounts) {
        // Superseded, its accounts are no longer copied on write: its frames would mix positions.
        if (this.live !== live) throw new Error(`billing snapshot ${live.number} of shard ${this.shard} was superseded by another before it was written`);
        const texts: string[] = [];
        for (; slot < live.accounts && texts.length < accountsPerFrame; slot++) {
          const preImage = live.preImages.get(slot);
          if (preImage === undefined) {
            texts.push(JSON.stringify(this.accountAt(slot)));
            this.table.encodedIn[slot] = live.number;
          } else {
            texts.push(preImage);
            live.preImages.delete(slot);
          }
        }
        yield { kind: 'accounts', data: encoder.encode(`[${texts.join(',')}]`) };
      }
      for (const data of partitions) yield { kind: 'partitions', data };
    } finally {
      if (this.live === live) this.live = undefined;
    }
  }

  /** Copy on write: an account about to change that a live snapshot has not encoded yet is encoded first. */
  private beforeChange(slot: number): void {
    const live = this.live;
    if (live === undefined || this.table.encodedIn[slot] === live.number) return;
    live.preImages.set(slot, JSON.stringify(this.accountAt(slot)));
    this.table.encodedIn[slot] = live.number;
  }

  static restore(options: BillingShardOptions, frames: Iterable<{ kind: string; data: Uint8Array }>): BillingShard {
    const shard = new BillingShard(options);
    const decoder = new TextDecoder();
    let header: { format: number; shard: number; lastSequence: number; lastLogTimeMs: number; accounts?: number } | undefined;
    for (const frame of frames) {
      const value: unknown = JSON.parse(decoder.decode(frame.data));
      if (frame.kind === 'header') {
        header = value as typeof header;
        if (header?.format !== SNAPSHOT_FORMAT) throw new Error(`billing snapshot of format ${String(header?.format)}, expected ${SNAPSHOT_FORMAT}`);
        if (header.shard !== options.shard) throw new Error(`billing snapshot is of shard ${header.shard}, not ${options.shard}`);
        shard.lastSequenceApplied = header.lastSequence;
        shard.lastLogTimeMs = header.lastLogTimeMs;
        if (header.accounts !== undefined) shard.table.reserve(header.accounts);
      } else if (frame.kind === 'accounts') {
        for (const account of value as AccountState[]) shard.restoreAccount(account);
      } else if (frame.kind === 'partitions') {
        const stored = value as {
          partition: number;
          last: number;
          finalBeforeMs: number;
          windows: Array<[number, Array<[string, AppliedWindow[]]>]>;
          held: Array<{ position: number; sequence: number; logTimeMs: number; batch: string }>;
          skippedGaps: PartitionTrack['skippedGaps'];
        };
        const windows = new Map<number, WindowsEndingAt>();
        for (const [endMs, byAccount] of stored.windows) {
          const ending = new WindowsEndingAt();
          for (const [accountId, applied] of byAccount) {
            const slot = shard.table.slotOf(accountId);
            if (slot === undefined) throw new Error(`billing snapshot of shard ${options.shard} has revisable windows of account ${accountId}, which it does not hold`);
            for (const [startMs, currency, revision, amountMinor, transactionCount] of applied) {
              ending.add(slot, startMs, shard.table.currencies.numberOf(currency), revision, amountMinor, transactionCount);
            }
          }
          windows.set(endMs, ending);
        }
        shard.partitions.set(stored.partition, {
          last: stored.last,
          finalBeforeMs: stored.finalBeforeMs,
          windows,
          held: new Map(stored.held.map((entry) => [entry.position, { sequence: entry.sequence, logTimeMs: entry.logTimeMs, batch: readSpendBatch(Buffer.from(entry.batch, 'base64')) }])),
          skippedGaps: stored.skippedGaps,
        });
      } else {
        throw new Error(`billing snapshot has a frame of unknown kind ${frame.kind}`);
      }
    }
    if (!header) throw new Error('billing snapshot has no header');
    return shard;
  }

  /** For logs: where each partition's chain stands. */
  describePartitions(): Array<{ partition: number; last: string; held: number; revisableWindows: number }> {
    return [...this.partitions].map(([partition, track]) => ({
      partition,
      last: track.last === 0 ? '-' : describePosition(track.last),
      held: track.held.size,
      revisableWindows: [...track.windows.values()].reduce((sum, ending) => sum + ending.size, 0),
    }));
  }
}

function count(output: ShardOutput, outcome: ShardOutcome, by = 1): void {
  output.outcomes[outcome] = (output.outcomes[outcome] ?? 0) + by;
}

function problemOfWindow(window: SpendWindowInput): string | undefined {
  if (!ACCOUNT_ID.test(window.accountId)) return 'account_id is not 1-64 of letters, digits, . _ : -';
  if (!CURRENCY.test(window.currency)) return `currency ${JSON.stringify(window.currency.slice(0, 10))} is not an ISO 4217 code`;
  if (!Number.isSafeInteger(window.amountMinor) || window.amountMinor < 0 || window.amountMinor > MAX_ENTRY_AMOUNT_MINOR) {
    return `amount_minor ${window.amountMinor} is out of range 0..${MAX_ENTRY_AMOUNT_MINOR}`;
  }
  if (!Number.isSafeInteger(window.transactionCount) || window.transactionCount < 0) return 'transaction_count is out of range';
  if (!(window.revision >= 1)) return 'revision must be at least 1';
  if (window.windowStartMs === undefined || Number.isNaN(window.windowStartMs)) return 'window_start is missing';
  if (window.windowEndMs === undefined || !(window.windowEndMs > window.windowStartMs)) return 'window_end is missing or not after window_start';
  return undefined;
}
