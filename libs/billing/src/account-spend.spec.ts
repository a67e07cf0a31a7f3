import fc from 'fast-check';
import type { AccountSpendDocument, AccountUpdate, SpendingAlertRecord } from '@tollstream/stores';
import {
  applySpend,
  clearThreshold,
  markPublished,
  monthlySpendView,
  setThreshold,
  type BillingPolicy,
} from './account-spend';
import type { SpendEntry } from './spend-entries';

const policy: BillingPolicy = { operatorTimeZone: 'UTC', ledgerRetentionMs: 35 * 86_400_000 };
const NOV = Date.UTC(2026, 10, 10, 12);
const ACCOUNT = 'acct-1';

/** Runs an update the way a store does: on a private copy; keeps what it returns to store. */
class Account {
  document: AccountSpendDocument | undefined;
  run<R>(update: AccountUpdate<R>): R {
    update.months(this.document?.account);
    const { next, result } = update.apply(this.document ? structuredClone(this.document) : undefined);
    if (next) this.document = structuredClone(next);
    return result;
  }
  get alerts(): SpendingAlertRecord[] {
    return (this.document?.account.outbox ?? []).filter((entry): entry is SpendingAlertRecord => entry.kind === 'spending-alert');
  }
  total(month = '2026-11'): number {
    return this.document?.months[month]?.totalMinor ?? 0;
  }
}

function windowEntry(window: string, revision: number, amountMinor: number, atMs = NOV, overrides: Partial<SpendEntry> = {}): SpendEntry {
  return {
    accountId: ACCOUNT,
    currency: 'USD',
    ledgerKey: window,
    revision,
    amountMinor,
    transactionCount: 1,
    monthInstantMs: atMs,
    occurredAtMs: atMs + 500,
    sourceId: `spend/${ACCOUNT}/USD/${window}/r${revision}`,
    ...overrides,
  };
}

const apply = (account: Account, entries: SpendEntry[], nowMs = NOV + 10_000) => account.run(applySpend(ACCOUNT, entries, policy, nowMs));

describe('applying window results', () => {
  it('adds new windows, ignores replays, applies only the difference of an amendment, ignores older revisions', () => {
    const account = new Account();
    expect(apply(account, [windowEntry('p0/1-2', 1, 300), windowEntry('p1/1-2', 1, 200)]).outcomes).toMatchObject({ applied: 2 });
    expect(account.total()).toBe(500);
    expect(apply(account, [windowEntry('p0/1-2', 1, 300)]).outcomes).toMatchObject({ duplicate: 1, applied: 0 });
    expect(account.total()).toBe(500);
    expect(apply(account, [windowEntry('p0/1-2', 3, 450)]).outcomes).toMatchObject({ amended: 1 });
    expect(account.total()).toBe(650);
    expect(apply(account, [windowEntry('p0/1-2', 2, 400)]).outcomes).toMatchObject({ superseded: 1 });
    expect(account.total()).toBe(650);
    expect(account.document?.months['2026-11'].transactionCount).toBe(2);
  });

  it('writes nothing when nothing changes (a redelivery), but still hands back the unpublished outbox', () => {
    const account = new Account();
    account.run(setThreshold(ACCOUNT, { amountMinor: 100, currency: 'USD' }, policy, NOV));
    apply(account, [windowEntry('p0/1-2', 1, 300)]);
    const update = applySpend(ACCOUNT, [windowEntry('p0/1-2', 1, 300)], policy, NOV + 20_000);
    const { next, result } = update.apply(structuredClone(account.document));
    expect(next).toBeUndefined();
    expect(result.outbox.map((entry) => entry.id)).toEqual(['threshold/acct-1/v1', 'spending/acct-1/2026-11/v1']);
  });

  it('counts each calendar month in the account time zone, and a new month starts from zero', () => {
    const account = new Account();
    const lastOfOctoberUtc = Date.UTC(2026, 9, 31, 23, 59, 59);
    apply(account, [windowEntry('p0/a', 1, 100, lastOfOctoberUtc), windowEntry('p0/b', 1, 70, Date.UTC(2026, 10, 1, 0, 0, 0))]);
    expect(account.total('2026-10')).toBe(100);
    expect(account.total('2026-11')).toBe(70);

    // An account first seen while the operator zone was New York keeps counting in New York.
    const newYork = new Account();
    newYork.run(applySpend(ACCOUNT, [windowEntry('p0/a', 1, 100, Date.UTC(2026, 10, 1, 3))], { ...policy, operatorTimeZone: 'America/New_York' }, NOV));
    expect(newYork.document?.account.timeZone).toBe('America/New_York');
    expect(newYork.total('2026-10')).toBe(100); // 23:00 on 31 October in New York
    newYork.run(applySpend(ACCOUNT, [windowEntry('p0/b', 1, 5, Date.UTC(2026, 10, 1, 5))], policy, NOV));
    expect(newYork.total('2026-11')).toBe(5);
  });

  it('takes the currency of the first spend and rejects spend in another currency', () => {
    const account = new Account();
    apply(account, [windowEntry('p0/a', 1, 100)]);
    const result = apply(account, [windowEntry('p0/b', 1, 100, NOV, { currency: 'EUR' })]);
    expect(result.rejected.map((rejection) => rejection.reason)).toEqual(['currency-mismatch']);
    expect(account.total()).toBe(100);
  });

  it('seals the ledger of a month long over and rejects results for it afterwards (bounded ledger)', () => {
    const account = new Account();
    apply(account, [windowEntry('p0/a', 1, 100, Date.UTC(2026, 8, 15))]);
    expect(account.document?.account.openLedgerMonths).toEqual(['2026-09']);
    const later = Date.UTC(2026, 9, 1) + 14 * 3_600_000 + policy.ledgerRetentionMs + 1;
    const result = apply(account, [windowEntry('p0/b', 1, 50, Date.UTC(2026, 8, 20))], later);
    expect(result.rejected.map((rejection) => rejection.reason)).toEqual(['month-sealed']);
    expect(account.document?.months['2026-09']).toMatchObject({ totalMinor: 100, ledger: {}, ledgerSealed: true });
    expect(account.document?.account.openLedgerMonths).toEqual([]);
  });
});

describe('alert headroom (the hint that lets alert-raising spend go first)', () => {
  it('is the spend still needed before the next alert of the current month, 0 when due, none without a threshold or once alerted', () => {
    const account = new Account();
    expect(apply(account, [windowEntry('p0/a', 1, 300)]).alertHeadroomMinor).toBeUndefined();
    expect(account.run(setThreshold(ACCOUNT, { amountMinor: 1_000, currency: 'USD' }, policy, NOV + 1_000))).toMatchObject({ alertHeadroomMinor: 700 });
    expect(account.run(setThreshold(ACCOUNT, { amountMinor: 1_000, currency: 'USD' }, policy, NOV + 2_000))).toMatchObject({ changed: false, alertHeadroomMinor: 700 });
    expect(apply(account, [windowEntry('p0/b', 1, 650)]).alertHeadroomMinor).toBe(50);
    // A duplicate changes nothing and still reports the headroom.
    expect(apply(account, [windowEntry('p0/b', 1, 650)]).alertHeadroomMinor).toBe(50);
    // The breach: alerted for this threshold version, so no further alert this month.
    const breach = apply(account, [windowEntry('p0/c', 1, 60)]);
    expect(breach.raised).toHaveLength(1);
    expect(breach.alertHeadroomMinor).toBeUndefined();
    // A new, higher threshold can alert again: headroom from the current total.
    expect(account.run(setThreshold(ACCOUNT, { amountMinor: 2_000, currency: 'USD' }, policy, NOV + 3_000))).toMatchObject({ alertHeadroomMinor: 990 });
    // In the next month the total starts again from 0.
    const december = Date.UTC(2026, 11, 2);
    expect(apply(account, [windowEntry('p0/d', 1, 100, december)], december + 1_000).alertHeadroomMinor).toBe(1_900);
  });
});

describe('spending threshold breaches', () => {
  it('alerts once when the total goes from below the threshold to at or above it, with the breaching window time', () => {
    const account = new Account();
    account.run(setThreshold(ACCOUNT, { amountMinor: 1_000, currency: 'USD' }, policy, NOV - 1_000));
    apply(account, [windowEntry('p0/a', 1, 600)]);
    expect(account.alerts).toEqual([]);
    const result = apply(account, [windowEntry('p0/b', 1, 400, NOV + 1_000), windowEntry('p0/c', 1, 10, NOV + 2_000)]);
    expect(result.raised).toEqual([
      expect.objectContaining({ id: 'spending/acct-1/2026-11/v1', totalMinor: 1_000, thresholdMinor: 1_000, breachedAtMs: NOV + 1_500, month: '2026-11', currency: 'USD' }),
    ]);
    apply(account, [windowEntry('p0/d', 1, 500), windowEntry('p0/a', 2, 700)]);
    expect(account.alerts).toHaveLength(1);
  });

  it('alerts at once when a threshold is set at or below the current total (breach time: when it was set)', () => {
    const account = new Account();
    apply(account, [windowEntry('p0/a', 1, 600)]);
    const result = account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV + 60_000));
    expect(result).toMatchObject({ ok: true, breachedNow: true, changed: true });
    expect(account.alerts).toEqual([expect.objectContaining({ id: 'spending/acct-1/2026-11/v1', totalMinor: 600, breachedAtMs: NOV + 60_000 })]);
  });

  it('setting the same threshold again changes nothing (retries are safe) and reports the alert as it stands', () => {
    const account = new Account();
    apply(account, [windowEntry('p0/a', 1, 600)]);
    account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV));
    // A retry after a lost reply hears the same answer as the first call: breached.
    expect(account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV + 5))).toMatchObject({ changed: false, breachedNow: true });
    expect(account.document?.account.thresholdVersion).toBe(1);
    expect(account.alerts).toHaveLength(1);
    // Raised above the total (v2): its repeat is not breached.
    account.run(setThreshold(ACCOUNT, { amountMinor: 5_000, currency: 'USD' }, policy, NOV + 6));
    expect(account.run(setThreshold(ACCOUNT, { amountMinor: 5_000, currency: 'USD' }, policy, NOV + 7))).toMatchObject({ changed: false, breachedNow: false });
    expect(account.document?.account.thresholdVersion).toBe(2);
  });

  it('a threshold raised after a breach and crossed again is a new alert', () => {
    const account = new Account();
    account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV));
    apply(account, [windowEntry('p0/a', 1, 600)]);
    account.run(setThreshold(ACCOUNT, { amountMinor: 1_000, currency: 'USD' }, policy, NOV + 1));
    expect(account.alerts.map((alert) => alert.id)).toEqual(['spending/acct-1/2026-11/v1']);
    apply(account, [windowEntry('p0/b', 1, 450)]);
    expect(account.alerts.map((alert) => alert.id)).toEqual(['spending/acct-1/2026-11/v1', 'spending/acct-1/2026-11/v2']);
    expect(account.alerts[1]).toMatchObject({ thresholdMinor: 1_000, totalMinor: 1_050 });
  });

  it('a cleared threshold raises nothing; a threshold set again later is a new version', () => {
    const account = new Account();
    account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV));
    expect(account.run(clearThreshold(ACCOUNT, NOV + 1))).toMatchObject({ cleared: true });
    expect(account.run(clearThreshold(ACCOUNT, NOV + 2))).toMatchObject({ cleared: false });
    apply(account, [windowEntry('p0/a', 1, 600)]);
    expect(account.alerts).toEqual([]);
    account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV + 3));
    expect(account.alerts.map((alert) => alert.id)).toEqual(['spending/acct-1/2026-11/v3']);
    expect(account.document?.account.outbox.filter((entry) => entry.kind === 'threshold-changed').map((entry) => entry.id)).toEqual([
      'threshold/acct-1/v1',
      'threshold/acct-1/v2',
      'threshold/acct-1/v3',
    ]);
  });

  it('an amendment that brings the total back under does not retract the alert, and crossing again with the same threshold is not a new one', () => {
    const account = new Account();
    account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV));
    apply(account, [windowEntry('p0/a', 1, 600)]);
    apply(account, [windowEntry('p0/a', 2, 100)]); // e.g. a retracted session window
    expect(account.total()).toBe(100);
    const view = monthlySpendView(account.document?.account, account.document?.months['2026-11'], '2026-11', policy);
    expect(view).toMatchObject({ breached: false, remainingMinor: 400 });
    apply(account, [windowEntry('p0/b', 1, 450)]);
    expect(account.alerts).toHaveLength(1);
    expect(monthlySpendView(account.document?.account, account.document?.months['2026-11'], '2026-11', policy).breached).toBe(true);
  });

  it('a new month alerts again under the same threshold; months before the threshold was set never alert', () => {
    const account = new Account();
    account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV));
    apply(account, [windowEntry('p0/oct', 1, 900, Date.UTC(2026, 9, 20))]);
    apply(account, [windowEntry('p0/nov', 1, 900, NOV)]);
    apply(account, [windowEntry('p0/dec', 1, 900, Date.UTC(2026, 11, 2))]);
    expect(account.alerts.map((alert) => alert.id)).toEqual(['spending/acct-1/2026-11/v1', 'spending/acct-1/2026-12/v1']);
  });

  it('rejects a threshold in another currency than the account', () => {
    const account = new Account();
    apply(account, [windowEntry('p0/a', 1, 100)]);
    expect(account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'EUR' }, policy, NOV))).toEqual({
      ok: false,
      reason: 'currency-mismatch',
      accountCurrency: 'USD',
    });
  });

  it('removes published entries from the outbox only', () => {
    const account = new Account();
    account.run(setThreshold(ACCOUNT, { amountMinor: 500, currency: 'USD' }, policy, NOV));
    apply(account, [windowEntry('p0/a', 1, 600)]);
    expect(account.run(markPublished(['threshold/acct-1/v1', 'unknown']))).toBe(1);
    expect(account.document?.account.outbox.map((entry) => entry.id)).toEqual(['spending/acct-1/2026-11/v1']);
    expect(account.run(markPublished(['threshold/acct-1/v1']))).toBe(0);
  });
});

describe('properties', () => {
  // Windows with their revisions' full values (as the windower emits them); the last is final.
  const windowsArbitrary = fc.array(fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 });

  it('any order and duplication of results and amendments, in any batching, gives the totals of the final revisions applied once, and at most one alert', () => {
    fc.assert(
      fc.property(
        windowsArbitrary,
        fc.integer({ min: 1, max: 40_000 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 1, max: 10 }),
        (windows, thresholdMinor, picks, chunk) => {
          const all = windows.flatMap((revisions, w) => revisions.map((amount, r) => windowEntry(`p${w % 3}/${w}-${w + 1}`, r + 1, amount)));
          // Every result at least once, plus random repeats, in a random order.
          const sequence = [...all, ...picks.map((pick) => all[pick % all.length])];
          for (let i = sequence.length - 1; i > 0; i--) {
            const j = picks[i % picks.length] % (i + 1);
            [sequence[i], sequence[j]] = [sequence[j], sequence[i]];
          }
          const account = new Account();
          account.run(setThreshold(ACCOUNT, { amountMinor: thresholdMinor, currency: 'USD' }, policy, NOV - 1));
          for (let start = 0; start < sequence.length; start += chunk) apply(account, sequence.slice(start, start + chunk));
          const expected = windows.reduce((sum, revisions) => sum + revisions[revisions.length - 1], 0);
          expect(account.total()).toBe(expected);
          expect(account.document?.months['2026-11'].transactionCount).toBe(windows.length);
          expect(account.alerts.length).toBeLessThanOrEqual(1);
          if (expected >= thresholdMinor) expect(account.alerts).toHaveLength(1);
        },
      ),
      { numRuns: 300 },
    );
  });
});
