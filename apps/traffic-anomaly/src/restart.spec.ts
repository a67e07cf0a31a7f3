// SIGKILL of traffic-anomaly in the middle of a backlog: after a restart every expected alert is
// there exactly once (checked against an independent oracle), none missing, none repeated.
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Alert, StationTrafficBatch, Streams, Subjects } from '@tollstream/contracts';
import { declareTopology, partitionForStation, provisionTopology } from '@tollstream/messaging';
import { startNats, startService, waitFor, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { loadReferenceFile, openKvReferenceStore } from '@tollstream/traffic';

jest.setTimeout(60_000);

const PARTITIONS = 2;
const SLOTS = 240;
const SLOT_MS = 30 * 60_000;
const T0 = Date.parse('2026-11-02T00:00:00Z'); // Monday
const stations = ['st-a', 'st-b', 'st-c', 'st-d', 'st-e', 'st-f'];
/** 0 = silent; band is [10, 20]. */
const countOf = (station: number, slot: number) => ((station + 1) * 7 + slot * 3) % 29;

let nats: NatsHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let service: ServiceProcess | undefined;

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await provisionTopology(jsm, declareTopology({ transactionPartitions: PARTITIONS }));
});
afterAll(async () => {
  await service?.kill('SIGKILL');
  await nc?.close();
  await nats?.stop();
});

function start(): Promise<ServiceProcess> {
  return startService({
    app: 'traffic-anomaly',
    httpPortVariable: 'TRAFFIC_HTTP_PORT',
    grpcPortVariable: 'TRAFFIC_GRPC_PORT',
    env: {
      NATS_URL: nats.url,
      TOLL_TX_PARTITIONS: String(PARTITIONS),
      TRAFFIC_GRPC_HOST: '127.0.0.1',
      TRAFFIC_API_TOKEN: 'traffic-api-token-for-tests-01',
      TRAFFIC_MAX_MESSAGES_PER_ROUND: '1',
      TRAFFIC_MAX_CATCH_UP: '30d',
      LOG_LEVEL: 'info', // the ready line is logged at info
    },
  });
}

/** Only traffic alerts are published in this test. */
async function alertCount(): Promise<number> {
  return (await jsm.streams.info(Streams.alerts)).state.messages;
}

async function alertIds(): Promise<string[]> {
  const ids: string[] = [];
  const info = await jsm.streams.info(Streams.alerts);
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(Streams.alerts, { seq }).catch(() => null);
    if (message?.subject === Subjects.alert('traffic')) ids.push(Alert.decode(message.data).alertId);
  }
  return ids;
}

it('restarts after SIGKILL mid-backlog without lost or repeated alerts', async () => {
  const rows = ['station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max'];
  for (const station of stations) {
    for (const day of ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) {
      for (let slot = 0; slot < 48; slot++) rows.push(`${station},2026-01-01T00:00:00Z,UTC,30,${day},${String(Math.floor(slot / 2)).padStart(2, '0')}:${slot % 2 ? '30' : '00'},10,20`);
    }
  }
  const store = await openKvReferenceStore(js);
  const { changes } = await loadReferenceFile(store, rows.join('\n'), 'csv', { dryRun: false });
  const version = changes[0].version;

  // Oracle: one alert per station-slot whose count is outside [10, 20] (0 for a silent station).
  const expected = new Set<string>();
  stations.forEach((station, s) => {
    for (let slot = 0; slot < SLOTS; slot++) {
      const count = countOf(s, slot);
      if (count < 10) expected.add(`traffic/${station}/${T0 + slot * SLOT_MS}/BELOW_MINIMUM/${version}`);
      if (count > 20) expected.add(`traffic/${station}/${T0 + slot * SLOT_MS}/ABOVE_MAXIMUM/${version}`);
    }
  });

  // The backlog: per partition a start batch, then one batch per slot that closes it.
  for (let partition = 0; partition < PARTITIONS; partition++) {
    const members = stations.filter((station) => partitionForStation(station, PARTITIONS) === partition);
    await js.publish(Subjects.stationTrafficPartition(partition), StationTrafficBatch.encode({ batchId: `p${partition}/start`, sourcePartition: partition, inputSequence: 0, watermark: new Date(T0), windows: [] }).finish());
    for (let slot = 0; slot < SLOTS; slot++) {
      const batch: StationTrafficBatch = {
        batchId: `p${partition}/${slot}`,
        sourcePartition: partition,
        inputSequence: slot + 1,
        watermark: new Date(T0 + (slot + 1) * SLOT_MS),
        windows: members
          .filter((station) => countOf(stations.indexOf(station), slot) > 0)
          .map((station) => ({
            resultId: `${station}/${slot}`,
            stationId: station,
            windowStart: new Date(T0 + slot * SLOT_MS),
            windowEnd: new Date(T0 + (slot + 1) * SLOT_MS),
            timeZone: 'UTC',
            vehicleCount: countOf(stations.indexOf(station), slot),
            countsByClass: [],
            revision: 1,
            sourcePartition: partition,
          })),
      };
      await js.publish(Subjects.stationTrafficPartition(partition), StationTrafficBatch.encode(batch).finish());
    }
  }

  service = await start();
  await waitFor(async () => (await alertCount()) >= expected.size / 4, { timeoutMs: 30_000, intervalMs: 50 });
  await service.kill('SIGKILL');
  const beforeRestart = await alertCount();
  expect(beforeRestart).toBeLessThan(expected.size); // killed mid-run
  service = await start();
  await waitFor(async () => (await alertCount()) >= expected.size, { timeoutMs: 40_000, intervalMs: 200 });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const ids = await alertIds();
  expect(ids.length).toBe(new Set(ids).size);
  expect([...expected].filter((id) => !ids.includes(id))).toEqual([]);
  expect(ids.filter((id) => !expected.has(id))).toEqual([]);
  console.log(`restart test: ${expected.size} alerts expected, ${beforeRestart} before SIGKILL, ${ids.length} after restart, none repeated or missing`);
});
