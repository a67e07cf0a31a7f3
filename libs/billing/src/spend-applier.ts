import type { JetStreamClient } from '@nats-io/jetstream';
import { Alert, SpendingThresholdChanged, Subjects } from '@tollstream/contracts';
import type { AccountSpendStore, OutboxEntry } from '@tollstream/stores';
import { applySpend, markPublished, readOutbox, type ApplySpendResult, type BillingPolicy, type EntryOutcome } from './account-spend';
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
  observer?: SpendApplierObserver;
  /** Clock (tests). */
  now?: () => number;
}

export interface ApplyBatchResult {
  rejected: ApplySpendResult['rejected'];
  alertsRaised: number;
  accounts: number;
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

  constructor(private readonly options: SpendApplierOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Applies a batch; resolves once every account's update is stored and its outbox published (and
   * rejects, after every account of the batch has settled, with the first failure).
   *
   * Batches may be applied concurrently (the consumer pipelines its rounds): the accounts of all
   * batches in progress share `accountConcurrency` update slots, and an account is never updated by
   * two batches at once — its entries of a later batch wait until its update of an earlier batch has
   * settled (then they are applied in batch order).
   */
  async applyEntries(entries: readonly SpendEntry[]): Promise<ApplyBatchResult> {
    const byAccount = new Map<string, SpendEntry[]>();
    for (const entry of entries) {
      let list = byAccount.get(entry.accountId);
      if (!list) byAccount.set(entry.accountId, (list = []));
      list.push(entry);
    }
    const result: ApplyBatchResult = { rejected: [], alertsRaised: 0, accounts: byAccount.size };
    const settled = await Promise.allSettled(
      Array.from(byAccount, ([accountId, accountEntries]) =>
        this.exclusively(accountId, async () => {
          const started = this.now();
          const applied = await this.options.store.update(accountId, applySpend(accountId, accountEntries, this.options.policy, this.now()));
          this.options.observer?.accountUpdated?.(this.now() - started);
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
  /** Update slots in use, and updates waiting for one (FIFO). */
  private slotsInUse = 0;
  private slotWaiters: Array<() => void> = [];
  private slotWaitersHead = 0;

  /** Runs `work` for the account after the account's earlier work has settled, in one of the shared slots. */
  private exclusively(accountId: string, work: () => Promise<void>): Promise<void> {
    const previous = this.accountTails.get(accountId);
    const run = async (): Promise<void> => {
      if (previous) await previous;
      await this.acquireSlot();
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
    });
    return task;
  }

  private acquireSlot(): Promise<void> | undefined {
    if (this.slotsInUse < this.options.accountConcurrency) {
      this.slotsInUse++;
      return undefined;
    }
    return new Promise<void>((resolve) => this.slotWaiters.push(resolve));
  }

  private releaseSlot(): void {
    if (this.slotWaitersHead < this.slotWaiters.length) {
      const next = this.slotWaiters[this.slotWaitersHead++];
      if (this.slotWaitersHead === this.slotWaiters.length) {
        this.slotWaiters = [];
        this.slotWaitersHead = 0;
      } else if (this.slotWaitersHead >= 1_024 && this.slotWaitersHead * 2 >= this.slotWaiters.length) {
        this.slotWaiters = this.slotWaiters.slice(this.slotWaitersHead);
        this.slotWaitersHead = 0;
      }
      next(); // the slot passes to the next waiter
    } else {
      this.slotsInUse--;
    }
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
