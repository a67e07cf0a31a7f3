import type { JetStreamClient } from '@nats-io/jetstream';
import { Alert, SpendingThresholdChanged, Subjects } from '@tollstream/contracts';
import type { AccountSpendStore, OutboxEntry } from '@tollstream/stores';
import { applySpend, markPublished, readOutbox, type ApplySpendResult, type BillingPolicy, type EntryOutcome } from './account-spend';
import { AlertWatch } from './alert-watch';
import type { SpendEntry } from './spend-entries';

export interface SpendApplierObserver {
  /** Entries by outcome. */
  outcomes?(outcome: EntryOutcome, count: number): void;
  /** An alert raised by this process was published: event time of the breach → confirmed by the broker. */
  alertPublished?(alertId: string, breachToPublishMs: number | undefined): void;
  thresholdEventPublished?(eventId: string): void;
  /** Store update of one account (all its entries of a batch). */
  accountUpdated?(durationMs: number): void;
}

export interface SpendApplierOptions {
  store: AccountSpendStore;
  js: JetStreamClient;
  policy: BillingPolicy;
  /** Accounts updated concurrently while applying one batch. */
  accountConcurrency: number;
  /** Accounts with a threshold whose alert headroom is remembered to apply alert-raising spend first (default 250,000). */
  watchedAccounts?: number;
  observer?: SpendApplierObserver;
  /** Clock (tests). */
  now?: () => number;
}

export interface ApplyBatchResult {
  rejected: ApplySpendResult['rejected'];
  alertsRaised: number;
  accounts: number;
}

interface SlotWaiter {
  /** Set when the slot was given: a promoted waiter is in both queues and must be granted once. */
  granted: boolean;
  grant: () => void;
}

/** The outbox entry as the message it becomes: subject, Nats-Msg-Id, bytes. */
export function outboxMessage(entry: OutboxEntry): { subject: string; msgID: string; data: Uint8Array } {
  if (entry.kind === 'spending-alert') {
    const alert: Alert = {
      alertId: entry.id,
      raisedAt: new Date(entry.raisedAtMs),
      spendingThresholdBreached: {
        accountId: entry.accountId,
        month: entry.month,
        timeZone: entry.timeZone,
        thresholdMinor: entry.thresholdMinor,
        totalMinor: entry.totalMinor,
        currency: entry.currency,
        breachedAt: new Date(entry.breachedAtMs),
      },
      stationTraffic: undefined,
    };
    return { subject: Subjects.alert('spending'), msgID: entry.id, data: Alert.encode(alert).finish() };
  }
  const event: SpendingThresholdChanged = {
    eventId: entry.id,
    accountId: entry.accountId,
    version: entry.version,
    threshold: entry.threshold
      ? {
          accountId: entry.accountId,
          amount: { amountMinor: entry.threshold.amountMinor, currency: entry.threshold.currency },
          version: entry.threshold.version,
          setAt: new Date(entry.threshold.setAtMs),
          effectiveFromMonth: entry.threshold.effectiveFromMonth,
        }
      : undefined,
    changedAt: new Date(entry.changedAtMs),
  };
  return { subject: Subjects.spendingThresholdChanges, msgID: entry.id, data: SpendingThresholdChanged.encode(event).finish() };
}

/**
 * Applies spend entries to the store, account by account, and publishes what the updates put in
 * the accounts' outboxes (alerts, threshold events): store first (atomically with the totals), then
 * publish with the deterministic id as Nats-Msg-Id, then remove from the outbox. A crash anywhere in
 * between leaves the entry in the outbox; it is published again by the next update of the account
 * (the redelivered input) or by the sweep, and the broker's duplicate window absorbs the repeat.
 */
export class SpendApplier {
  private readonly now: () => number;
  private readonly alertWatch: AlertWatch;

  constructor(private readonly options: SpendApplierOptions) {
    this.now = options.now ?? Date.now;
    this.alertWatch = new AlertWatch(options.watchedAccounts);
  }

  /**
   * Entries have arrived and will be applied: returns the accounts whose entries may raise an alert
   * (with what arrived before them, they reach the account's known headroom). Call once per entry.
   */
  arrived(entries: readonly SpendEntry[]): Set<string> {
    const mayAlert = new Set<string>();
    for (const entry of entries) if (this.alertWatch.arrive(entry.accountId, entry.amountMinor)) mayAlert.add(entry.accountId);
    return mayAlert;
  }

  /** The account's threshold was set or cleared (the account API): its new alert headroom. */
  thresholdChanged(accountId: string, alertHeadroomMinor: number | undefined): void {
    this.alertWatch.thresholdChanged(accountId, alertHeadroomMinor);
  }

  /**
   * Applies a batch; resolves once every account's update is stored and its outbox published (and
   * rejects, after every account of the batch has settled, with the first failure).
   *
   * Batches may be applied concurrently (the consumer pipelines its rounds): the accounts of all
   * batches in progress share `accountConcurrency` update slots, and an account is never updated by
   * two batches at once — its entries of a later batch wait until its update of an earlier batch has
   * settled (then they are applied in batch order). An `urgent` batch (it may raise an alert) takes
   * the next free update slots before batches that are not.
   */
  async applyEntries(entries: readonly SpendEntry[], options: { urgent?: boolean } = {}): Promise<ApplyBatchResult> {
    const byAccount = new Map<string, SpendEntry[]>();
    for (const entry of entries) {
      let list = byAccount.get(entry.accountId);
      if (!list) byAccount.set(entry.accountId, (list = []));
      list.push(entry);
    }
    const result: ApplyBatchResult = { rejected: [], alertsRaised: 0, accounts: byAccount.size };
    const settled = await Promise.allSettled(
      Array.from(byAccount, ([accountId, accountEntries]) =>
        this.exclusively(accountId, options.urgent === true, async () => {
          const started = this.now();
          const applied = await this.options.store.update(accountId, applySpend(accountId, accountEntries, this.options.policy, this.now()));
          this.options.observer?.accountUpdated?.(this.now() - started);
          this.alertWatch.applied(
            accountId,
            accountEntries.reduce((sum, entry) => sum + entry.amountMinor, 0),
            applied.alertHeadroomMinor,
          );
          for (const [outcome, count] of Object.entries(applied.outcomes) as Array<[EntryOutcome, number]>) {
            if (count > 0) this.options.observer?.outcomes?.(outcome, count);
          }
          result.rejected.push(...applied.rejected);
          result.alertsRaised += applied.raised.length;
          if (applied.outbox.length > 0) await this.publishOutbox(accountId, applied.outbox);
        }),
      ),
    );
    const failure = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failure) throw failure.reason;
    return result;
  }

  /** Accounts with an update of a batch queued or running: the settlement of the last one. */
  private readonly accountTails = new Map<string, Promise<void>>();
  /** Update slots in use, and updates waiting for one (FIFO; urgent ones first). */
  private slotsInUse = 0;
  private slotWaiters: SlotWaiter[] = [];
  private slotWaitersHead = 0;
  private urgentSlotWaiters: SlotWaiter[] = [];
  /** The account's update waiting for a slot (at most one: an account's updates run one after another). */
  private readonly waitingForSlot = new Map<string, SlotWaiter>();
  /** Accounts with urgent work submitted and not settled: all their updates until then go first. */
  private readonly urgentAccounts = new Map<string, number>();

  /**
   * Runs `work` for the account after the account's earlier work has settled, in one of the shared
   * slots. Urgent work makes the account's earlier work urgent too (it has to go before it).
   */
  private exclusively(accountId: string, urgent: boolean, work: () => Promise<void>): Promise<void> {
    const previous = this.accountTails.get(accountId);
    if (urgent) {
      this.urgentAccounts.set(accountId, (this.urgentAccounts.get(accountId) ?? 0) + 1);
      const waiting = this.waitingForSlot.get(accountId);
      if (waiting) this.urgentSlotWaiters.push(waiting); // also still in the normal queue: granted once (SlotWaiter.granted)
    }
    const run = async (): Promise<void> => {
      if (previous) await previous;
      await this.acquireSlot(accountId);
      try {
        await work();
      } finally {
        this.releaseSlot();
      }
    };
    const task = run();
    const tail = task.then(
      () => undefined,
      () => undefined,
    );
    this.accountTails.set(accountId, tail);
    void tail.then(() => {
      if (this.accountTails.get(accountId) === tail) this.accountTails.delete(accountId);
      if (urgent) {
        const left = (this.urgentAccounts.get(accountId) ?? 1) - 1;
        if (left > 0) this.urgentAccounts.set(accountId, left);
        else this.urgentAccounts.delete(accountId);
      }
    });
    return task;
  }

  private acquireSlot(accountId: string): Promise<void> | undefined {
    if (this.slotsInUse < this.options.accountConcurrency) {
      this.slotsInUse++;
      return undefined;
    }
    return new Promise<void>((resolve) => {
      const waiter: SlotWaiter = {
        granted: false,
        grant: () => {
          if (this.waitingForSlot.get(accountId) === waiter) this.waitingForSlot.delete(accountId);
          resolve();
        },
      };
      this.waitingForSlot.set(accountId, waiter);
      (this.urgentAccounts.has(accountId) ? this.urgentSlotWaiters : this.slotWaiters).push(waiter);
    });
  }

  private releaseSlot(): void {
    const next = this.nextWaiter();
    if (next) {
      next.granted = true;
      next.grant(); // the slot passes to the waiter
    } else {
      this.slotsInUse--;
    }
  }

  /** The next waiter not granted yet: urgent ones first, then in order of arrival. */
  private nextWaiter(): SlotWaiter | undefined {
    for (let waiter = this.urgentSlotWaiters.shift(); waiter; waiter = this.urgentSlotWaiters.shift()) {
      if (!waiter.granted) return waiter;
    }
    while (this.slotWaitersHead < this.slotWaiters.length) {
      const waiter = this.slotWaiters[this.slotWaitersHead++];
      if (this.slotWaitersHead === this.slotWaiters.length) {
        this.slotWaiters = [];
        this.slotWaitersHead = 0;
      } else if (this.slotWaitersHead >= 1_024 && this.slotWaitersHead * 2 >= this.slotWaiters.length) {
        this.slotWaiters = this.slotWaiters.slice(this.slotWaitersHead);
        this.slotWaitersHead = 0;
      }
      if (waiter && !waiter.granted) return waiter;
    }
    return undefined;
  }

  /** Publishes outbox entries (deterministic ids) and removes them from the account's outbox. */
  async publishOutbox(accountId: string, outbox: readonly OutboxEntry[]): Promise<void> {
    for (const entry of outbox) {
      const message = outboxMessage(entry);
      await this.options.js.publish(message.subject, message.data, { msgID: message.msgID });
      if (entry.kind === 'spending-alert') {
        // Latency only for alerts raised by a spend result (not re-publications after a crash).
        const fresh = this.now() - entry.raisedAtMs < 60_000;
        this.options.observer?.alertPublished?.(entry.id, fresh ? this.now() - entry.breachedAtMs : undefined);
      } else {
        this.options.observer?.thresholdEventPublished?.(entry.id);
      }
    }
    await this.options.store.update(
      accountId,
      markPublished(outbox.map((entry) => entry.id)),
    );
  }

  /** Publishes every outbox left behind (after a crash between store update and publish). Returns entries published. */
  async sweepOutboxes(): Promise<number> {
    let published = 0;
    for (const accountId of await this.options.store.accountsWithOutbox()) {
      const outbox = await this.options.store.update(accountId, readOutbox());
      if (outbox.length === 0) continue;
      await this.publishOutbox(accountId, outbox);
      published += outbox.length;
    }
    return published;
  }
}
