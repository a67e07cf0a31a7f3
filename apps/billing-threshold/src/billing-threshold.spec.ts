import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Alert, Streams, Subjects } from '@tollstream/contracts';
import {
  describeWithMongo,
  startIngestor,
  startNats,
  startService,
  startWindower,
  tempDir,
  waitFor,
  type NatsHandle,
  type ServiceProcess,
  type TempDirHandle,
  seededRandom,
  sendThroughIngestor,
} from '@tollstream/testing';
import { accountClient, expectedMonthTotals, generateBillingTraffic } from './__fixtures__/billing-traffic';

const STATION_TOKEN = 'billing-e2e-station-token-01';
const API_TOKEN = 'billing-e2e-mobile-backend-token-01';
const PARTITIONS = 4;
const RECORDS_PER_SECOND = 1_500;

// Event times end a little before now (the ingestor accepts up to 72 h old); 1-second spend windows.
const traffic = generateBillingTraffic({
  seed: 20261124,
  transactions: 16_000,
  stations: 12,
  accounts: 150,
  batchSize: 200,
  startMs: Date.now() - 150_000,
  spanMs: 120_000,
  lateShare: 0.01,
});
const expectedTotals = expectedMonthTotals(traffic);
// A threshold for 120 of the 150 accounts, between 40 % and 160 % of the account's expected spend.
const thresholds = new Map<string, number>();
{
  const next = seededRandom(7);
  const perAccount = new Map<string, number>();
  for (const [key, total] of expectedTotals) perAccount.set(key.split('/')[0], (perAccount.get(key.split('/')[0]) ?? 0) + total.totalMinor);
  for (const account of traffic.accounts.slice(0, 120)) {
    thresholds.set(account, Math.max(1, Math.round((perAccount.get(account) ?? 1_000) * (0.4 + 1.2 * next()))));
  }
}

interface Pipeline {
  nats: NatsHandle;
  nc: NatsConnection;
  jsm: JetStreamManager;
  dir: TempDirHandle;
  processes: ServiceProcess[];
  billing?: ServiceProcess;
  close(): Promise<void>;
}

async function startPipeline(billingEnv: NodeJS.ProcessEnv): Promise<{ pipeline: Pipeline; startBilling: () => Promise<ServiceProcess> }> {
  const nats = await startNats();
  const dir = await tempDir('billing-e2e');
  const credentialsFile = join(dir.path, 'stations.json');
  writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'test', token: STATION_TOKEN, stationIds: traffic.stations }] }));
  const tokenFile = join(dir.path, 'account-api-token');
  writeFileSync(tokenFile, `${API_TOKEN}\n`);
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  const pipeline: Pipeline = {
    nats,
    nc,
    jsm,
    dir,
    processes: [],
    close: async () => {
      await Promise.all([...pipeline.processes, ...(pipeline.billing ? [pipeline.billing] : [])].map((process) => process.kill('SIGKILL')));
      await nc.close();
      await nats.stop();
      await dir.remove();
    },
  };
  const startBilling = () =>
    startService({
      app: 'billing-threshold',
      grpcPortVariable: 'BILLING_GRPC_PORT',
      httpPortVariable: 'BILLING_HTTP_PORT',
      grpcPort: pipeline.billing?.grpcPort,
      env: {
        NATS_URL: nats.url,
        BILLING_GRPC_HOST: '127.0.0.1',
        ACCOUNT_API_TOKEN_FILE: tokenFile,
        TOLL_TX_PARTITIONS: String(PARTITIONS),
        BILLING_ACK_WAIT: '2s',
        BILLING_OUTBOX_SWEEP_INTERVAL: '2s',
        OPERATOR_TIME_ZONE: 'UTC',
        LOG_LEVEL: 'info',
        ...billingEnv,
      },
    });
  pipeline.processes.push(await startIngestor({ natsUrl: nats.url, credentialsFile, env: { TOLL_TX_PARTITIONS: String(PARTITIONS) } }));
  pipeline.processes.push(
    await startWindower({
      natsUrl: nats.url,
      env: {
        TOLL_TX_PARTITIONS: String(PARTITIONS),
        SPEND_WINDOW: 'tumbling:1s',
        SPEND_OUT_OF_ORDERNESS: '1s',
        SPEND_ALLOWED_LATENESS: '5s',
        WINDOW_IDLE_TIMEOUT: '2s',
        WINDOWER_HEARTBEAT_INTERVAL: '500ms',
        WINDOWER_CHECKPOINT_INTERVAL: '1s',
        WINDOWER_LEASE_TTL: '3s',
        WINDOWER_LEASE_RENEW_INTERVAL: '1s',
      },
    }),
  );
  pipeline.billing = await startBilling();
  return { pipeline, startBilling };
}

async function readSpendingAlerts(jsm: JetStreamManager): Promise<Alert[]> {
  const alerts: Alert[] = [];
  const info = await jsm.streams.info(Streams.alerts);
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(Streams.alerts, { seq }).catch(() => null);
    if (message?.subject === Subjects.alert('spending')) alerts.push(Alert.decode(message.data));
  }
  return alerts;
}

/**
 * Re-publishes stored spend and late messages (and threshold commands, which share the spend
 * shards' subjects, with their headers) under new message ids: input the broker cannot deduplicate.
 */
async function republishSomeResults(pipeline: Pipeline, count: number): Promise<number> {
  const js = jetstream(pipeline.nc);
  const info = await pipeline.jsm.streams.info(Streams.aggregates);
  let republished = 0;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && republished < count; seq += 3) {
    const message = await pipeline.jsm.streams.getMessage(Streams.aggregates, { seq }).catch(() => null);
    if (!message || !(message.subject.startsWith('tolls.agg.spend.') || message.subject.startsWith('tolls.agg.late.spend.'))) continue;
    await js.publish(message.subject, message.data, { msgID: `test-duplicate-${seq}`, headers: message.header });
    republished++;
  }
  return republished;
}

function billingScenario(name: string, billingEnv: () => NodeJS.ProcessEnv): void {
  it(`${name}: exact monthly totals and exactly one alert per breach, through SIGKILL/restart of billing-threshold, duplicates and late input`, async () => {
    const { pipeline, startBilling } = await startPipeline(billingEnv());
    current = pipeline;
    const client = () => accountClient(`127.0.0.1:${pipeline.billing?.grpcPort}`, API_TOKEN);
    let api = client();
    const effectiveMonth = new Map<string, string>();
    for (const [account, amountMinor] of thresholds) {
      const response = await api.setSpendingThreshold({ accountId: account, threshold: { amountMinor, currency: 'USD' } });
      effectiveMonth.set(account, response.threshold?.effectiveFromMonth ?? '');
    }

    let sendingDone = false;
    const sending = sendThroughIngestor(`127.0.0.1:${pipeline.processes[0].grpcPort}`, STATION_TOKEN, traffic.sends, { recordsPerSecond: RECORDS_PER_SECOND }).finally(() => {
      sendingDone = true;
    });
    // Two crashes of billing while results stream in.
    const killedWhileSending: boolean[] = [];
    for (const pause of [2_000, 1_500]) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      killedWhileSending.push(!sendingDone);
      await pipeline.billing?.kill('SIGKILL');
      api.close();
      pipeline.billing = await startBilling();
      api = client();
    }
    expect(killedWhileSending).toEqual([true, true]);
    const sent = await sending;
    expect(sent.accepted).toBe(traffic.unique.length);
    expect(sent.duplicate).toBeGreaterThan(0);
    // Input billing itself must recognise as already applied.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await republishSomeResults(pipeline, 40)).toBeGreaterThan(10);

    const monthsOf = new Map<string, string[]>();
    for (const key of expectedTotals.keys()) {
      const [account, month] = key.split('/');
      monthsOf.set(account, [...(monthsOf.get(account) ?? []), month]);
    }
    let mismatches: string[] = [];
    await waitFor(
      async () => {
        mismatches = [];
        for (const [key, expected] of expectedTotals) {
          const [account, month] = key.split('/');
          const { spend } = await api.getMonthlySpend({ accountId: account, month });
          if (spend?.total?.amountMinor !== expected.totalMinor || spend.transactionCount !== expected.count) {
            mismatches.push(`${key}: expected ${expected.totalMinor} (${expected.count}), got ${spend?.total?.amountMinor} (${spend?.transactionCount})`);
          }
        }
        return mismatches.length === 0;
      },
      { timeoutMs: 45_000, intervalMs: 1_000, description: 'every account-month total as computed from the transactions' },
    ).catch(() => undefined);
    expect(mismatches.slice(0, 10)).toEqual([]);

    // Settle: an alert is published right after the update that raised it.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const alerts = await readSpendingAlerts(pipeline.jsm);
    const alertsByKey = new Map<string, Alert[]>();
    for (const alert of alerts) {
      const breach = alert.spendingThresholdBreached;
      const key = `${breach?.accountId}/${breach?.month}`;
      alertsByKey.set(key, [...(alertsByKey.get(key) ?? []), alert]);
    }
    const problems: string[] = [];
    let breaches = 0;
    for (const [account, thresholdMinor] of thresholds) {
      for (const month of monthsOf.get(account) ?? []) {
        const total = expectedTotals.get(`${account}/${month}`)?.totalMinor ?? 0;
        const got = alertsByKey.get(`${account}/${month}`) ?? [];
        alertsByKey.delete(`${account}/${month}`);
        const shouldAlert = month >= (effectiveMonth.get(account) ?? '') && total >= thresholdMinor;
        if (!shouldAlert) {
          if (got.length > 0) problems.push(`${account}/${month}: ${got.length} alerts, expected none (total ${total} < ${thresholdMinor})`);
          continue;
        }
        breaches++;
        if (got.length !== 1) {
          problems.push(`${account}/${month}: ${got.length} alerts, expected 1`);
          continue;
        }
        const breach = got[0].spendingThresholdBreached;
        if (got[0].alertId !== `spending/${account}/${month}/v1`) problems.push(`${account}/${month}: alert id ${got[0].alertId}`);
        if (breach?.thresholdMinor !== thresholdMinor || breach.currency !== 'USD' || breach.timeZone !== 'UTC') {
          problems.push(`${account}/${month}: ${JSON.stringify(breach)}`);
        }
        if (!breach || breach.totalMinor < thresholdMinor || breach.totalMinor > total) problems.push(`${account}/${month}: alert total ${breach?.totalMinor} outside [${thresholdMinor}, ${total}]`);
      }
    }
    for (const [key, extra] of alertsByKey) problems.push(`${key}: ${extra.length} unexpected alerts`);
    expect(problems.slice(0, 10)).toEqual([]);
    expect(breaches).toBeGreaterThan(20);
    // Late input was really exercised, and nothing was dead-lettered by billing.
    const aggregates = await pipeline.jsm.streams.info(Streams.aggregates, { subjects_filter: 'tolls.agg.late.spend.>' });
    expect(Object.values(aggregates.state.subjects ?? {}).reduce((sum, count) => sum + count, 0)).toBeGreaterThan(0);
    const deadLetters = await pipeline.jsm.streams.info(Streams.deadLetters, { subjects_filter: Subjects.deadLetter('billing-threshold') });
    expect(Object.keys(deadLetters.state.subjects ?? {})).toEqual([]);
    expect(breaches).toBeLessThan(thresholds.size);

    // The API agrees with the alerts.
    const [sampleAccount, sampleThreshold] = [...thresholds][0];
    const sampleMonth = (monthsOf.get(sampleAccount) ?? [])[0];
    const { spend } = await api.getMonthlySpend({ accountId: sampleAccount, month: sampleMonth });
    const sampleTotal = expectedTotals.get(`${sampleAccount}/${sampleMonth}`)?.totalMinor ?? 0;
    expect(spend).toMatchObject({ breached: sampleTotal >= sampleThreshold, threshold: { amountMinor: sampleThreshold, currency: 'USD' } });
    api.close();
  }, 150_000);
}

let current: Pipeline | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

describe('billing-threshold end to end: ingestor → windower → billing-threshold on a real nats-server (embedded JetStream KV store)', () => {
  billingScenario('shard state machine, JetStream KV store', () => ({ BILLING_ENGINE: 'shard-state', BILLING_STORE: 'nats-kv' }));
  // The per-result design (ADR 0008) stays selectable for one release (deployments not yet migrated).
  billingScenario('per-result design, JetStream KV store', () => ({ BILLING_ENGINE: 'per-result', BILLING_STORE: 'nats-kv' }));
});

describeWithMongo('billing-threshold end to end with the MongoDB store', (getUri) => {
  billingScenario('MongoDB store', () => ({ BILLING_STORE: 'mongodb', MONGODB_URI: getUri(), MONGODB_DATABASE: `billing_e2e_${Date.now()}` }));
});
