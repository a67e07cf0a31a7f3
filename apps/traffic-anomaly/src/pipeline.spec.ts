// End to end: stations → ingestor → windower → traffic-anomaly, all real processes on a real nats-server.
import * as grpc from '@grpc/grpc-js';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Alert, IngestServiceClient, Streams, Subjects, TrafficCondition, type SubmitTransactionsResponse, type TollTransaction } from '@tollstream/contracts';
import { aTollTransaction, startIngestor, startNats, startService, startWindower, tempDir, waitFor, type NatsHandle, type ServiceProcess, type TempDirHandle } from '@tollstream/testing';
import { loadReferenceFile, openKvReferenceStore } from '@tollstream/traffic';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

jest.setTimeout(90_000);

const SLOT_MS = 30 * 60_000;
const TOKEN = 'traffic-e2e-station-token-0001';
// A slot of today that is over (event times in the past: the windower's idle rule closes it).
const slotStart = Math.floor(Date.now() / SLOT_MS) * SLOT_MS - 3 * SLOT_MS;
const weekday = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][new Date(slotStart).getUTCDay()];
const hhmm = new Date(slotStart).toISOString().slice(11, 16);
const sends: Record<string, number> = { 'st-low': 2, 'st-ok': 6, 'st-high': 12, 'st-silent': 0 };

let nats: NatsHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;
let dir: TempDirHandle;
const processes: ServiceProcess[] = [];

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  dir = await tempDir('traffic-e2e');
});
afterAll(async () => {
  await Promise.all(processes.map((process) => process.kill('SIGKILL')));
  await nc?.close();
  await nats?.stop();
  await dir?.remove();
});

async function submit(address: string, transactions: TollTransaction[]): Promise<SubmitTransactionsResponse> {
  const client = new IngestServiceClient(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${TOKEN}`);
  try {
    return await new Promise((resolve, reject) =>
      client.submitTransactions({ transactions }, metadata, { deadline: Date.now() + 20_000 }, (error, response) => (error ? reject(error) : resolve(response))),
    );
  } finally {
    client.close();
  }
}

async function readTrafficAlerts(): Promise<Alert[]> {
  const alerts: Alert[] = [];
  const info = await jsm.streams.info(Streams.alerts).catch(() => undefined);
  for (let seq = info?.state.first_seq ?? 1; info && info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(Streams.alerts, { seq }).catch(() => null);
    if (message?.subject === Subjects.alert('traffic')) alerts.push(Alert.decode(message.data));
  }
  return alerts;
}

it('ingestor → windower → traffic-anomaly: below, within, above and a silent station of a closed slot', async () => {
  const credentialsFile = join(dir.path, 'stations.json');
  writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'test', token: TOKEN, stationIds: Object.keys(sends) }] }));
  const common = { TOLL_TX_PARTITIONS: '1' };
  const ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile, env: common });
  processes.push(ingestor);
  processes.push(
    await startWindower({
      natsUrl: nats.url,
      env: { ...common, TRAFFIC_WINDOW: 'tumbling:30m', TRAFFIC_OUT_OF_ORDERNESS: '1s', TRAFFIC_ALLOWED_LATENESS: '10m', WINDOW_IDLE_TIMEOUT: '2s', WINDOWER_HEARTBEAT_INTERVAL: '500ms' },
    }),
  );
  const csv = ['station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max', ...Object.keys(sends).map((station) => `${station},2026-01-01T00:00:00Z,UTC,30,${weekday},${hhmm},5,10`)];
  await loadReferenceFile(await openKvReferenceStore(jetstream(nc)), csv.join('\n'), 'csv', { dryRun: false });
  processes.push(
    await startService({
      app: 'traffic-anomaly',
      httpPortVariable: 'TRAFFIC_HTTP_PORT',
      grpcPortVariable: 'TRAFFIC_GRPC_PORT',
      env: { NATS_URL: nats.url, ...common, TRAFFIC_GRPC_HOST: '127.0.0.1', TRAFFIC_API_TOKEN: 'traffic-api-token-for-tests-01', TRAFFIC_ALLOWED_LATENESS: '10m' },
    }),
  );

  const transactions: TollTransaction[] = Object.entries(sends).flatMap(([station, count]) =>
    Array.from({ length: count }, (_, i) =>
      aTollTransaction({ stationId: station, transactionId: `${station}-${i}`, tagId: `TAG-${i}`, occurredAt: new Date(slotStart + 60_000 * (i + 1)) }),
    ),
  );
  const response = await submit(`127.0.0.1:${ingestor.grpcPort}`, transactions);
  expect(response.results).toHaveLength(transactions.length);

  await waitFor(async () => (await readTrafficAlerts()).length >= 3, { timeoutMs: 45_000, intervalMs: 250, description: 'three traffic alerts' });
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const alerts = await readTrafficAlerts();
  expect(
    alerts
      .map((alert) => `${alert.stationTraffic?.stationId} ${TrafficCondition[alert.stationTraffic?.condition ?? 0]} ${alert.stationTraffic?.vehicleCount} [${alert.stationTraffic?.expectedMinimum},${alert.stationTraffic?.expectedMaximum}]`)
      .sort(),
  ).toEqual(['st-high TRAFFIC_CONDITION_ABOVE_MAXIMUM 12 [5,10]', 'st-low TRAFFIC_CONDITION_BELOW_MINIMUM 2 [5,10]', 'st-silent TRAFFIC_CONDITION_BELOW_MINIMUM 0 [5,10]']);
  for (const alert of alerts) expect(alert.stationTraffic?.slotStart?.getTime()).toBe(slotStart);
});
