import * as grpc from '@grpc/grpc-js';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createAccountService, SpendApplier, storeAccountBackend, type BillingPolicy, type SpendEntry } from '@tollstream/billing';
import { AccountServiceService, SpendingThresholdChanged, Streams, Subjects } from '@tollstream/contracts';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { createLogger, detailsOfStatus, startGrpcServer, statusOfTrailers, type GrpcServerHandle } from '@tollstream/service-kit';
import { KvAccountSpendStore } from '@tollstream/stores';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { accountClient } from './__fixtures__/billing-traffic';

const TOKEN = 'mobile-backend-token-for-tests-01';
const policy: BillingPolicy = { operatorTimeZone: 'UTC', ledgerRetentionMs: 35 * 86_400_000 };
// A fixed "now": 10 November 2026, 12:00 UTC.
const NOW = Date.UTC(2026, 10, 10, 12);

let nats: NatsHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;
let server: GrpcServerHandle;
let applier: SpendApplier;
let api: ReturnType<typeof accountClient>;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await provisionTopology(jsm, declareTopology());
  const store = await KvAccountSpendStore.open(js, { bucket: 'account-api-spec' });
  applier = new SpendApplier({ store, js, policy, accountConcurrency: 4, now: () => NOW });
  server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ service: 'account-service-spec', level: 'silent' }),
    services: [
      {
        name: 'tolls.accounts.v1.AccountService',
        definition: AccountServiceService,
        implementation: createAccountService({
          backend: storeAccountBackend({ store, applier, policy, logger: createLogger({ service: 'spec', level: 'silent' }), now: () => NOW }),
          policy,
          limits: { maxThresholdMinor: 10_000_000 },
          token: TOKEN,
          logger: createLogger({ service: 'spec', level: 'silent' }),
          now: () => NOW,
        }),
      },
    ],
  });
  api = accountClient(`127.0.0.1:${server.port}`, TOKEN);
});
afterAll(async () => {
  api?.close();
  await server?.shutdown(1_000);
  await nc?.close();
  await nats?.stop();
});

const money = (amountMinor: number, currency = 'USD') => ({ amountMinor, currency });
const spend = (accountId: string, window: string, amountMinor: number, atMs = NOW - 60_000): SpendEntry => ({
  accountId,
  currency: 'USD',
  ledgerKey: window,
  revision: 1,
  amountMinor,
  transactionCount: 1,
  monthInstantMs: atMs,
  occurredAtMs: atMs,
  sourceId: window,
});

async function rejection(promise: Promise<unknown>): Promise<{ code: number; details: string; violations: unknown }> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as grpc.ServiceError | undefined;
  if (!error) throw new Error('the call succeeded');
  // The google.rpc.BadRequest of the grpc-status-details-bin trailer, as a client reads it.
  const status = statusOfTrailers(error.metadata);
  return { code: error.code, details: error.details, violations: status && detailsOfStatus(status).fieldViolations };
}

describe('tolls.accounts.v1.AccountService', () => {
  it('answers UNAUTHENTICATED without the mobile backend credential or with a wrong one', async () => {
    for (const token of [undefined, 'wrong-token-of-sufficient-length']) {
      const client = accountClient(`127.0.0.1:${server.port}`, token);
      try {
        expect(await rejection(client.getSpendingThreshold({ accountId: 'acct-1' }))).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
        expect(await rejection(client.setSpendingThreshold({ accountId: 'acct-1', threshold: money(100) }))).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      } finally {
        client.close();
      }
    }
  });

  it('answers INVALID_ARGUMENT naming the field', async () => {
    const cases: Array<[Promise<unknown>, string]> = [
      [api.setSpendingThreshold({ accountId: '', threshold: money(100) }), 'account_id: is required'],
      [api.setSpendingThreshold({ accountId: 'acct/1', threshold: money(100) }), 'account_id:'],
      [api.setSpendingThreshold({ accountId: 'a'.repeat(65), threshold: money(100) }), 'account_id:'],
      [api.setSpendingThreshold({ accountId: 'acct-v', threshold: undefined }), 'threshold: is required'],
      [api.setSpendingThreshold({ accountId: 'acct-v', threshold: money(0) }), 'threshold.amount_minor: must be a positive'],
      [api.setSpendingThreshold({ accountId: 'acct-v', threshold: money(-5) }), 'threshold.amount_minor: must be a positive'],
      [api.setSpendingThreshold({ accountId: 'acct-v', threshold: money(10_000_001) }), 'threshold.amount_minor: must be at most 10000000'],
      [api.setSpendingThreshold({ accountId: 'acct-v', threshold: money(100, 'usd') }), 'threshold.currency:'],
      [api.setSpendingThreshold({ accountId: 'acct-v', threshold: money(100, 'XYZ') }), 'threshold.currency:'],
      [api.getMonthlySpend({ accountId: 'acct-v', month: '2026-13' }), 'month: must be YYYY-MM'],
      [api.listMonthlySpend({ accountId: 'acct-v', pageSize: 500, pageToken: '' }), 'page_size:'],
      [api.listMonthlySpend({ accountId: 'acct-v', pageSize: 5, pageToken: 'garbage' }), 'page_token:'],
      [api.clearSpendingThreshold({ accountId: '' }), 'account_id: is required'],
    ];
    for (const [call, field] of cases) {
      const error = await rejection(call);
      expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error.details.startsWith(field)).toBe(true);
      const colon = error.details.indexOf(': ');
      expect(error.violations).toEqual([{ field: error.details.slice(0, colon), description: error.details.slice(colon + 2) }]);
    }
  });

  it('sets, reads, changes and clears a threshold; each change is an event on the stream', async () => {
    expect(await api.getSpendingThreshold({ accountId: 'acct-t' })).toEqual({ threshold: undefined });
    const set = await api.setSpendingThreshold({ accountId: 'acct-t', threshold: money(5_000) });
    expect(set).toMatchObject({ breachedNow: false, threshold: { accountId: 'acct-t', amount: money(5_000), version: 1, effectiveFromMonth: '2026-11', setAt: new Date(NOW) } });
    // The same again is a no-op (client retries).
    expect((await api.setSpendingThreshold({ accountId: 'acct-t', threshold: money(5_000) })).threshold?.version).toBe(1);
    expect((await api.setSpendingThreshold({ accountId: 'acct-t', threshold: money(7_500) })).threshold?.version).toBe(2);
    expect((await api.getSpendingThreshold({ accountId: 'acct-t' })).threshold?.amount).toEqual(money(7_500));
    // The account's currency is now USD.
    expect(await rejection(api.setSpendingThreshold({ accountId: 'acct-t', threshold: money(100, 'EUR') }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: "threshold.currency: must be the account's currency USD",
      violations: [{ field: 'threshold.currency', description: "must be the account's currency USD" }],
    });
    expect(await api.clearSpendingThreshold({ accountId: 'acct-t' })).toEqual({ cleared: true });
    expect(await api.clearSpendingThreshold({ accountId: 'acct-t' })).toEqual({ cleared: false });
    expect(await api.getSpendingThreshold({ accountId: 'acct-t' })).toEqual({ threshold: undefined });

    const info = await jsm.streams.info(Streams.accounts);
    const events: SpendingThresholdChanged[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const message = await jsm.streams.getMessage(Streams.accounts, { seq });
      if (message?.subject === Subjects.spendingThresholdChanges) events.push(SpendingThresholdChanged.decode(message.data));
    }
    const ofAccount = events.filter((event) => event.accountId === 'acct-t');
    expect(ofAccount.map((event) => [event.eventId, event.threshold?.amount?.amountMinor])).toEqual([
      ['threshold/acct-t/v1', 5_000],
      ['threshold/acct-t/v2', 7_500],
      ['threshold/acct-t/v3', undefined],
    ]);
  });

  it('shows the monthly spend with threshold, remaining, breached and as-of; a threshold below the total breaches at once', async () => {
    await applier.applyEntries([spend('acct-m', 'p0/1-2', 3_000), spend('acct-m', 'p1/3-4', 1_000, NOW - 30_000)]);
    expect((await api.getMonthlySpend({ accountId: 'acct-m', month: '' })).spend).toEqual({
      accountId: 'acct-m',
      month: '2026-11',
      timeZone: 'UTC',
      total: money(4_000),
      threshold: undefined,
      remaining: undefined,
      breached: false,
      asOf: new Date(NOW - 30_000),
      transactionCount: 2,
    });
    await api.setSpendingThreshold({ accountId: 'acct-m', threshold: money(10_000) });
    expect((await api.getMonthlySpend({ accountId: 'acct-m', month: '2026-11' })).spend).toMatchObject({ threshold: money(10_000), remaining: money(6_000), breached: false });
    const lowered = await api.setSpendingThreshold({ accountId: 'acct-m', threshold: money(3_500) });
    expect(lowered.breachedNow).toBe(true);
    expect((await api.getMonthlySpend({ accountId: 'acct-m', month: '2026-11' })).spend).toMatchObject({ remaining: money(0), breached: true });
    // A month with nothing spent.
    expect((await api.getMonthlySpend({ accountId: 'acct-m', month: '2026-12' })).spend).toMatchObject({ total: money(0), transactionCount: 0, asOf: undefined });
    expect((await api.getMonthlySpend({ accountId: 'acct-unknown', month: '' })).spend).toMatchObject({ total: { amountMinor: 0 }, breached: false });
  });

  it('lists monthly spend newest first, in pages', async () => {
    const months = [Date.UTC(2026, 6, 15), Date.UTC(2026, 7, 15), Date.UTC(2026, 8, 15), Date.UTC(2026, 9, 15), Date.UTC(2026, 10, 5)];
    await applier.applyEntries(months.map((atMs, index) => spend('acct-h', `p0/${index}-${index + 1}`, 100 * (index + 1), atMs)));
    const first = await api.listMonthlySpend({ accountId: 'acct-h', pageSize: 2, pageToken: '' });
    expect(first.months.map((month) => [month.month, month.total?.amountMinor])).toEqual([
      ['2026-11', 500],
      ['2026-10', 400],
    ]);
    const second = await api.listMonthlySpend({ accountId: 'acct-h', pageSize: 2, pageToken: first.nextPageToken });
    expect(second.months.map((month) => month.month)).toEqual(['2026-09', '2026-08']);
    const last = await api.listMonthlySpend({ accountId: 'acct-h', pageSize: 2, pageToken: second.nextPageToken });
    expect(last.months.map((month) => month.month)).toEqual(['2026-07']);
    expect(last.nextPageToken).toBe('');
    expect((await api.listMonthlySpend({ accountId: 'acct-h', pageSize: 0, pageToken: '' })).months).toHaveLength(5);
  });
});
