import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Alert, Streams, Subjects } from '@tollstream/contracts';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { KvAccountSpendStore } from '@tollstream/stores';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { setThreshold, type BillingPolicy } from './account-spend';
import { SpendApplier } from './spend-applier';
import type { SpendEntry } from './spend-entries';

const policy: BillingPolicy = { operatorTimeZone: 'UTC', ledgerRetentionMs: 35 * 86_400_000 };
const NOV = Date.UTC(2026, 10, 10, 12);

let nats: NatsHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  js = jetstream(nc);
  await provisionTopology(jsm, declareTopology());
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

async function alertsOf(accountId: string): Promise<Alert[]> {
  const alerts: Alert[] = [];
  const info = await jsm.streams.info(Streams.alerts);
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(Streams.alerts, { seq }).catch(() => null);
    if (!message || message.subject !== Subjects.alert('spending')) continue;
    const alert = Alert.decode(message.data);
    if (alert.spendingThresholdBreached?.accountId === accountId) alerts.push(alert);
  }
  return alerts;
}

function entry(accountId: string, window: number, revision: number, amountMinor: number): SpendEntry {
  return {
    accountId,
    currency: 'USD',
    ledgerKey: `p${window % 4}/${window}-${window + 1}`,
    revision,
    amountMinor,
    transactionCount: revision,
    monthInstantMs: NOV + window,
    occurredAtMs: NOV + window,
    sourceId: `w${window}r${revision}`,
  };
}

describe('SpendApplier on JetStream KV and a real nats-server', () => {
  it('50 concurrent appliers of results (with duplicates and amendments) for one account lose no update, double none, and raise one alert', async () => {
    const store = await KvAccountSpendStore.open(js, { bucket: 'applier-concurrency' });
    const applier = new SpendApplier({ store, js, policy, accountConcurrency: 8, now: () => NOV + 60_000 });
    await store.update('acct-hot', setThreshold('acct-hot', { amountMinor: 50_000, currency: 'USD' }, policy, NOV));
    // 50 windows; each applier gets its window's revisions 1..3 and a few other windows' first revisions again.
    const appliers = Array.from({ length: 50 }, (_, w) => [
      entry('acct-hot', w, 1, 1_000),
      entry('acct-hot', (w + 7) % 50, 1, 1_000),
      entry('acct-hot', w, 3, 1_200),
      entry('acct-hot', w, 2, 1_100),
      entry('acct-hot', (w + 13) % 50, 1, 1_000),
    ]);
    await Promise.all(appliers.map((entries) => applier.applyEntries(entries)));
    const month = (await store.read('acct-hot', () => ['2026-11']))?.months['2026-11'];
    expect(month?.totalMinor).toBe(50 * 1_200);
    expect(month?.transactionCount).toBe(50 * 3);
    const alerts = await alertsOf('acct-hot');
    expect(alerts.map((alert) => alert.alertId)).toEqual(['spending/acct-hot/2026-11/v1']);
    expect(alerts[0].spendingThresholdBreached?.totalMinor).toBeGreaterThanOrEqual(50_000);
    expect((await store.read('acct-hot', () => []))?.account.outbox).toEqual([]);
  }, 60_000);

  it('a crash between the store update and the publication still gives exactly one alert (redelivery, or the sweep)', async () => {
    const store = await KvAccountSpendStore.open(js, { bucket: 'applier-crash', outboxMarkerGraceMs: 0 });
    // A broker connection that "dies" before publishing.
    const failingJs = { publish: () => Promise.reject(new Error('connection lost')) } as unknown as JetStreamClient;
    const crashing = new SpendApplier({ store, js: failingJs, policy, accountConcurrency: 4, now: () => NOV + 1 });
    const healthy = new SpendApplier({ store, js, policy, accountConcurrency: 4, now: () => NOV + 2 });
    for (const account of ['acct-redelivered', 'acct-swept']) {
      await store.update(account, setThreshold(account, { amountMinor: 500, currency: 'USD' }, policy, NOV));
      await expect(crashing.applyEntries([entry(account, 1, 1, 600)])).rejects.toThrow('connection lost');
      expect((await store.read(account, () => []))?.account.outbox.map((item) => item.id)).toContain(`spending/${account}/2026-11/v1`);
    }
    // The input is redelivered (it was never acknowledged): nothing is applied twice, the stored alert is published.
    await healthy.applyEntries([entry('acct-redelivered', 1, 1, 600)]);
    await healthy.applyEntries([entry('acct-redelivered', 1, 1, 600)]);
    // The other account's outbox is found by the start-up sweep.
    expect(await healthy.sweepOutboxes()).toBeGreaterThanOrEqual(2);
    expect(await healthy.sweepOutboxes()).toBe(0);
    for (const account of ['acct-redelivered', 'acct-swept']) {
      const alerts = await alertsOf(account);
      expect(alerts.map((alert) => alert.alertId)).toEqual([`spending/${account}/2026-11/v1`]);
      expect(alerts[0].spendingThresholdBreached).toMatchObject({ totalMinor: 600, thresholdMinor: 500, currency: 'USD', month: '2026-11', timeZone: 'UTC' });
      expect((await store.read(account, () => ['2026-11']))?.months['2026-11'].totalMinor).toBe(600);
    }
    // Published twice (the broker deduplicates by alert id): still one message.
    await healthy.publishOutbox('acct-swept', [
      { kind: 'spending-alert', id: 'spending/acct-swept/2026-11/v1', accountId: 'acct-swept', month: '2026-11', timeZone: 'UTC', thresholdMinor: 500, thresholdVersion: 1, totalMinor: 600, currency: 'USD', breachedAtMs: NOV, raisedAtMs: NOV },
    ]);
    expect(await alertsOf('acct-swept')).toHaveLength(1);
  }, 60_000);
});
