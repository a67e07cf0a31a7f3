import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Alert, StationTrafficBatch, Streams, Subjects, TrafficCondition, type StationTrafficWindow } from '@tollstream/contracts';
import { partitionForStation } from '@tollstream/messaging';
import { KvTrafficReferenceStore } from '@tollstream/stores';
import { startNats, startService, waitFor, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { loadReferenceFile, ReferenceFileInvalid } from '@tollstream/traffic';

jest.setTimeout(60_000);

const partitions = 2;
const slotMs = 30 * 60_000;
// Monday 2026-11-16 08:00 UTC: slots 08:00 and 08:30 have the band [10, 20] for every station.
const t0 = Date.parse('2026-11-16T08:00:00Z');
const stations = ['st-low', 'st-ok', 'st-high', 'st-silent', 'st-late'];
const header = 'station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max';
const referenceCsv = [header, ...stations.flatMap((station) => [`${station},2026-11-01T00:00:00Z,UTC,30,mon,08:00,10,20`, `${station},2026-11-01T00:00:00Z,UTC,30,mon,08:30,10,20`])].join('\n');

let nats: NatsHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let service: ServiceProcess | undefined;
let published = 0;

function startTrafficAnomaly(): Promise<ServiceProcess> {
  return startService({
    app: 'traffic-anomaly',
    httpPortVariable: 'TRAFFIC_HTTP_PORT',
    grpcPortVariable: 'TRAFFIC_GRPC_PORT',
    env: { NATS_URL: nats.url, TRAFFIC_GRPC_HOST: '127.0.0.1', TRAFFIC_API_TOKEN: 'traffic-api-token-for-tests-01', TOLL_TX_PARTITIONS: String(partitions), TRAFFIC_REFERENCE_REFRESH: '300ms', LOG_LEVEL: 'info' },
  });
}

async function publishBatch(partition: number, watermarkMs: number, windows: Array<{ station: string; slot: number; count: number; revision?: number }>, msgID = true): Promise<void> {
  const batch: StationTrafficBatch = {
    batchId: `test/${partition}/${++published}`,
    sourcePartition: partition,
    inputSequence: published,
    watermark: new Date(watermarkMs),
    windows: windows.map(
      (window): StationTrafficWindow => ({
        resultId: `${window.station}/${window.slot}/${window.revision ?? 1}`,
        stationId: window.station,
        windowStart: new Date(t0 + window.slot * slotMs),
        windowEnd: new Date(t0 + (window.slot + 1) * slotMs),
        timeZone: 'UTC',
        vehicleCount: window.count,
        countsByClass: [],
        revision: window.revision ?? 1,
        sourcePartition: partition,
      }),
    ),
  };
  await js.publish(Subjects.stationTrafficPartition(partition), StationTrafficBatch.encode(batch).finish(), msgID ? { msgID: batch.batchId } : undefined);
}

/** Publishes to every partition: each partition's watermark, and the windows of its stations. */
async function publishAll(watermarkMs: number, windows: Array<{ station: string; slot: number; count: number; revision?: number }>, msgID = true): Promise<void> {
  for (let partition = 0; partition < partitions; partition++) {
    await publishBatch(partition, watermarkMs, windows.filter((window) => partitionForStation(window.station, partitions) === partition), msgID);
  }
}

async function readTrafficAlerts(): Promise<Alert[]> {
  const alerts: Alert[] = [];
  const info = await jsm.streams.info(Streams.alerts);
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(Streams.alerts, { seq }).catch(() => null);
    if (message?.subject === Subjects.alert('traffic')) alerts.push(Alert.decode(message.data));
  }
  return alerts;
}

const summary = (alerts: Alert[]) =>
  alerts.map((alert) => `${alert.stationTraffic?.stationId} ${alert.stationTraffic?.slotStart?.toISOString().slice(11, 16)} ${TrafficCondition[alert.stationTraffic?.condition ?? 0]} ${alert.stationTraffic?.vehicleCount}`).sort();

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await service?.kill('SIGKILL');
  await nc?.close();
  await nats?.stop();
});

describe('reference files', () => {
  it('rejects bad files naming line and field, applies nothing; dry-run shows changes without writing', async () => {
    const store = await KvTrafficReferenceStore.open(js);
    const bad = [header, 'st-x,2026-11-01T00:00:00Z,UTC,30,mon,08:00,10,20', 'st-y,2026-11-01T00:00:00Z,UTC,30,mon,08:10,10,5'].join('\n');
    const error = await loadReferenceFile(store, bad, 'csv', { dryRun: false }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ReferenceFileInvalid);
    expect((error as Error).message).toMatch(/line 3: slot_start: must be a multiple of slot_minutes \(30\)\nline 3: max: must be >= min \(10\)/);
    expect(await store.list()).toEqual([]);

    const dry = await loadReferenceFile(store, referenceCsv, 'csv', { dryRun: true });
    expect(dry.changes.map((change) => change.action)).toEqual(stations.map(() => 'add'));
    expect(await store.list()).toEqual([]);

    await loadReferenceFile(store, referenceCsv, 'csv', { dryRun: false });
    expect((await store.list()).map((record) => record.stationId).sort()).toEqual([...stations].sort());
    const again = await loadReferenceFile(store, referenceCsv, 'csv', { dryRun: true });
    expect(again.changes.every((change) => change.action === 'unchanged')).toBe(true);
  });
});

describe('traffic-anomaly on real NATS', () => {
  it('alerts below / above / silent at slot close, resolves with a late amendment, and survives SIGKILL without lost or repeated alerts', async () => {
    service = await startTrafficAnomaly();
    // Slot 08:00 open: no alert yet.
    await publishAll(t0 + 10 * 60_000, []);
    const closingAt = Date.now();
    // The windower emits slot 08:00 when the watermark reaches 08:30 (st-silent sends nothing).
    await publishAll(t0 + slotMs, [
      { station: 'st-low', slot: 0, count: 3 },
      { station: 'st-ok', slot: 0, count: 15 },
      { station: 'st-high', slot: 0, count: 40 },
      { station: 'st-late', slot: 0, count: 5 },
    ]);
    await waitFor(async () => (await readTrafficAlerts()).length >= 4, { timeoutMs: 15_000 });
    const firstSeenMs = Date.now() - closingAt;
    const first = await readTrafficAlerts();
    expect(summary(first)).toEqual([
      'st-high 08:00 TRAFFIC_CONDITION_ABOVE_MAXIMUM 40',
      'st-late 08:00 TRAFFIC_CONDITION_BELOW_MINIMUM 5',
      'st-low 08:00 TRAFFIC_CONDITION_BELOW_MINIMUM 3',
      'st-silent 08:00 TRAFFIC_CONDITION_BELOW_MINIMUM 0',
    ]);
    const silent = first.find((alert) => alert.stationTraffic?.stationId === 'st-silent');
    expect(silent?.alertId).toMatch(new RegExp(`^traffic/st-silent/${t0}/BELOW_MINIMUM/2026-11-01T00:00:00.000Z#[0-9a-f]{10}$`));
    expect(silent?.stationTraffic).toMatchObject({ expectedMinimum: 10, expectedMaximum: 20, timeZone: 'UTC', slotEnd: new Date(t0 + slotMs) });
    const maxDelay = Math.max(...first.map((alert) => (alert.raisedAt as Date).getTime() - closingAt));
    console.log(`alert delay after slot close (closing batch published → alert raised): max ${maxDelay} ms; seen by a reader after ${firstSeenMs} ms`);

    // Late amendment lifts st-late into the band: one resolving alert.
    await publishAll(t0 + slotMs + 5 * 60_000, [{ station: 'st-late', slot: 0, count: 12, revision: 2 }]);
    await waitFor(async () => (await readTrafficAlerts()).length >= 5, { timeoutMs: 15_000 });
    const resolved = (await readTrafficAlerts()).find((alert) => alert.stationTraffic?.condition === TrafficCondition.TRAFFIC_CONDITION_BACK_WITHIN_BAND);
    expect(resolved?.alertId).toBe(`${first.find((alert) => alert.stationTraffic?.stationId === 'st-late')?.alertId}/resolved`);
    expect(resolved?.stationTraffic?.vehicleCount).toBe(12);

    // SIGKILL mid-run: while it is down, slot 08:30 closes; earlier input is replayed (no msgID: the broker cannot deduplicate).
    await service.kill('SIGKILL');
    await publishAll(t0 + 10 * 60_000, [], false);
    await publishAll(t0 + slotMs, [{ station: 'st-low', slot: 0, count: 3 }, { station: 'st-high', slot: 0, count: 40 }], false);
    await publishAll(t0 + 2 * slotMs, [
      { station: 'st-low', slot: 1, count: 11 },
      { station: 'st-ok', slot: 1, count: 12 },
      { station: 'st-high', slot: 1, count: 13 },
      { station: 'st-late', slot: 1, count: 14 },
    ]);
    await publishAll(t0 + slotMs + 5 * 60_000, [{ station: 'st-late', slot: 0, count: 12, revision: 2 }], false);
    service = await startTrafficAnomaly();
    await waitFor(async () => (await readTrafficAlerts()).length >= 6, { timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // anything extra would have come by now
    const all = await readTrafficAlerts();
    expect(new Set(all.map((alert) => alert.alertId)).size).toBe(all.length);
    expect(summary(all)).toEqual([
      'st-high 08:00 TRAFFIC_CONDITION_ABOVE_MAXIMUM 40',
      'st-late 08:00 TRAFFIC_CONDITION_BACK_WITHIN_BAND 12',
      'st-late 08:00 TRAFFIC_CONDITION_BELOW_MINIMUM 5',
      'st-low 08:00 TRAFFIC_CONDITION_BELOW_MINIMUM 3',
      'st-silent 08:00 TRAFFIC_CONDITION_BELOW_MINIMUM 0',
      'st-silent 08:30 TRAFFIC_CONDITION_BELOW_MINIMUM 0',
    ]);
    await service.stop();
    service = undefined;
  });
});
