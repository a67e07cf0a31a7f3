/**
 * Traffic benchmark (npx tsx tools/bench/traffic-load.ts):
 * 1. the pure detector in process: station × slot evaluations per second;
 * 2. traffic-anomaly as a real process on a real nats-server with the embedded KV stores: a backlog
 *    of StationTrafficBatch messages (stations × slots, every station of a partition in one batch
 *    per slot, like the windower) consumed from TOLL_AGG → evaluations per second;
 * 3. alert delay after slot close: closing batch published → alert raised (raised_at) / stored.
 */
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Alert, StationTrafficBatch, Streams, Subjects } from '@tollstream/contracts';
import { declareTopology, partitionForStation, provisionTopology } from '@tollstream/messaging';
import { KvTrafficDetectionStore, type StationReferenceRecord } from '@tollstream/stores';
import { startNats, startService, type ServiceProcess } from '@tollstream/testing';
import { applyTrafficBatch, loadReferenceFile, newPartitionState, openKvReferenceStore, parseReferenceFile, type ReferenceView } from '@tollstream/traffic';
import { percentile } from './stats';

export interface TrafficBenchOptions {
  stations: number;
  partitions: number;
  /** Slots in the backlog of the service phase. */
  slots: number;
  /** Slots closed one by one (a second apart) in the delay phase. */
  delaySlots: number;
  /** Station × slot evaluations of the in-process phase. */
  pureSlots: number;
}

export interface TrafficBenchFigures {
  options: TrafficBenchOptions;
  pure: { evaluations: number; seconds: number; evaluationsPerSecond: number };
  service: { evaluations: number; messages: number; seconds: number; evaluationsPerSecond: number };
  alertDelayMs: { raisedP50: number; raisedP99: number; storedP50: number; storedP99: number; max: number; samples: number };
}

const defaults: TrafficBenchOptions = { stations: 1_000, partitions: 8, slots: 96, delaySlots: 10, pureSlots: 336 };
const SLOT_MS = 30 * 60_000;
const T0 = Date.parse('2026-11-02T00:00:00Z'); // a Monday

function referenceCsv(stations: string[]): string {
  const rows = ['station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max'];
  for (const station of stations) {
    for (const day of ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) {
      for (let slot = 0; slot < 48; slot++) rows.push(`${station},2026-01-01T00:00:00Z,UTC,30,${day},${String(Math.floor(slot / 2)).padStart(2, '0')}:${slot % 2 ? '30' : '00'},10,100`);
    }
  }
  return rows.join('\n');
}

/** Count of a station in a slot: mostly within [10, 100]; some below, above and silent. */
const countOf = (station: number, slot: number) => ((station * 31 + slot * 17) % 50 === 0 ? 0 : (station * 7 + slot * 13) % 120);

function batchOf(partition: number, stations: string[], stationIndex: Map<string, number>, slot: number, sequence: number): StationTrafficBatch {
  return {
    batchId: `bench/${partition}/${slot}`,
    sourcePartition: partition,
    inputSequence: sequence,
    watermark: new Date(T0 + (slot + 1) * SLOT_MS),
    windows: stations
      .filter((station) => countOf(stationIndex.get(station) as number, slot) > 0)
      .map((station) => ({
        resultId: `${station}/${slot}`,
        stationId: station,
        windowStart: new Date(T0 + slot * SLOT_MS),
        windowEnd: new Date(T0 + (slot + 1) * SLOT_MS),
        timeZone: 'UTC',
        vehicleCount: countOf(stationIndex.get(station) as number, slot),
        countsByClass: [],
        revision: 1,
        sourcePartition: partition,
      })),
  };
}

export async function runTrafficBench(overrides: Partial<TrafficBenchOptions> = {}, log: (text: string) => void = console.log): Promise<TrafficBenchFigures> {
  const options = { ...defaults, ...overrides };
  const stations = Array.from({ length: options.stations }, (_, i) => `st-${String(i).padStart(5, '0')}`);
  const stationIndex = new Map(stations.map((station, i) => [station, i]));
  const csv = referenceCsv(stations);
  const byPartition = new Map<number, string[]>();
  for (const station of stations) {
    const partition = partitionForStation(station, options.partitions);
    byPartition.set(partition, [...(byPartition.get(partition) ?? []), station]);
  }

  // 1. Pure detector.
  log(`pure detector: ${options.stations} stations × ${options.pureSlots} slots`);
  const records = new Map<string, StationReferenceRecord>(parseReferenceFile(csv, 'csv').map(({ stationId, ...version }) => [stationId, { stationId, versions: [version] }]));
  const view: ReferenceView = { stationsOfPartition: (p) => byPartition.get(p) ?? [], get: (id) => records.get(id) };
  const detector = { slotSizeMs: SLOT_MS, graceMs: 0, allowedLatenessMs: 3_600_000, maxCatchUpMs: 86_400_000 };
  let pureEvaluations = 0;
  const pureStart = process.hrtime.bigint();
  for (const [partition, members] of byPartition) {
    const state = newPartitionState(partition);
    applyTrafficBatch(state, { watermarkMs: T0, windows: [] }, view, detector);
    for (let slot = 0; slot < options.pureSlots; slot++) {
      const batch = batchOf(partition, members, stationIndex, slot, slot);
      pureEvaluations += applyTrafficBatch(
        state,
        {
          watermarkMs: (batch.watermark as Date).getTime(),
          windows: batch.windows.map((w) => ({ stationId: w.stationId, startMs: (w.windowStart as Date).getTime(), endMs: (w.windowEnd as Date).getTime(), timeZone: w.timeZone, count: w.vehicleCount, revision: w.revision })),
        },
        view,
        detector,
      ).evaluations;
    }
  }
  const pureSeconds = Number(process.hrtime.bigint() - pureStart) / 1e9;
  log(`pure detector: ${pureEvaluations} evaluations in ${pureSeconds.toFixed(2)} s`);

  // 2. The service on a backlog.
  const nats = await startNats();
  const nc = await connect({ servers: nats.url });
  const js: JetStreamClient = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  let service: ServiceProcess | undefined;
  try {
    await provisionTopology(jsm, declareTopology({ transactionPartitions: options.partitions }));
    log(`loading references of ${options.stations} stations`);
    await loadReferenceFile(await openKvReferenceStore(js), csv, 'csv', { dryRun: false });
    let messages = 0;
    for (const [partition, members] of byPartition) {
      await js.publish(Subjects.stationTrafficPartition(partition), StationTrafficBatch.encode({ batchId: `bench/${partition}/start`, sourcePartition: partition, inputSequence: 0, watermark: new Date(T0), windows: [] }).finish());
      for (let slot = 0; slot < options.slots; slot++) {
        await js.publish(Subjects.stationTrafficPartition(partition), StationTrafficBatch.encode(batchOf(partition, members, stationIndex, slot, slot + 1)).finish());
        messages++;
      }
    }
    log(`backlog: ${messages} batches (${options.stations} stations × ${options.slots} slots); starting traffic-anomaly`);
    const spawnedAt = Date.now();
    service = await startService({
      app: 'traffic-anomaly',
      httpPortVariable: 'TRAFFIC_HTTP_PORT',
      grpcPortVariable: 'TRAFFIC_GRPC_PORT',
      env: { NATS_URL: nats.url, TOLL_TX_PARTITIONS: String(options.partitions), TRAFFIC_GRPC_HOST: '127.0.0.1', TRAFFIC_API_TOKEN: 'traffic-bench-api-token-0001', LOG_LEVEL: 'info', TRAFFIC_MAX_CATCH_UP: '30d' },
      readyTimeoutMs: 60_000,
    }).catch(async () => {
      throw new Error('traffic-anomaly did not start');
    });
    const started = Date.now();
    const detection = await KvTrafficDetectionStore.open(js);
    const lastSequences = await Promise.all(
      [...byPartition.keys()].map(async (partition) => ({ partition, seq: (await jsm.streams.getMessage(Streams.aggregates, { last_by_subj: Subjects.stationTrafficPartition(partition) }))?.seq ?? 0 })),
    );
    for (;;) {
      const states = await Promise.all(lastSequences.map(async ({ partition }) => (await detection.read(partition))?.state.lastStreamSequence ?? 0));
      if (states.every((seq, i) => seq >= lastSequences[i].seq)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Consumption starts before "ready" is logged: count from the spawn minus nothing (conservative, includes start-up).
    const serviceSeconds = (Date.now() - spawnedAt) / 1000;
    log(`backlog consumed ${((Date.now() - started) / 1000).toFixed(1)} s after ready, ${serviceSeconds.toFixed(1)} s after spawn`);
    const serviceEvaluations = options.stations * options.slots;

    // 3. Alert delay: close one slot at a time in every partition; measure each slot's alerts.
    const raised: number[] = [];
    const stored: number[] = [];
    const seen = new Set<string>();
    const sub = nc.subscribe(Subjects.alert('traffic'));
    const closedAt = new Map<number, number>();
    const reader = (async () => {
      for await (const message of sub) {
        const alert = Alert.decode(message.data);
        const start = alert.stationTraffic?.slotStart?.getTime() ?? 0;
        const published = closedAt.get(start);
        if (published === undefined || seen.has(alert.alertId)) continue;
        seen.add(alert.alertId);
        raised.push((alert.raisedAt as Date).getTime() - published);
        stored.push(Date.now() - published);
      }
    })();
    for (let i = 0; i < options.delaySlots; i++) {
      const slot = options.slots + i;
      closedAt.set(T0 + slot * SLOT_MS, Date.now());
      await Promise.all([...byPartition].map(([partition, members]) => js.publish(Subjects.stationTrafficPartition(partition), StationTrafficBatch.encode(batchOf(partition, members, stationIndex, slot, slot + 1)).finish())));
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    sub.unsubscribe();
    await reader;
    return {
      options,
      pure: { evaluations: pureEvaluations, seconds: pureSeconds, evaluationsPerSecond: Math.round(pureEvaluations / pureSeconds) },
      service: { evaluations: serviceEvaluations, messages, seconds: serviceSeconds, evaluationsPerSecond: Math.round(serviceEvaluations / serviceSeconds) },
      alertDelayMs: {
        raisedP50: percentile(raised, 50),
        raisedP99: percentile(raised, 99),
        storedP50: percentile(stored, 50),
        storedP99: percentile(stored, 99),
        max: Math.max(...stored),
        samples: stored.length,
      },
    };
  } finally {
    await service?.kill('SIGKILL');
    await nc.close();
    await nats.stop();
  }
}

export function printTrafficBench(figures: TrafficBenchFigures): void {
  const { pure, service, alertDelayMs } = figures;
  console.log(`traffic detector (in process): ${pure.evaluationsPerSecond.toLocaleString('en-US')} station×slot evaluations/s (${pure.evaluations} in ${pure.seconds.toFixed(2)} s)`);
  console.log(
    `traffic-anomaly (process, NATS KV state): ${service.evaluationsPerSecond.toLocaleString('en-US')} station×slot evaluations/s (${service.evaluations} from ${service.messages} batches in ${service.seconds.toFixed(1)} s)`,
  );
  console.log(
    `alert delay after slot close (closing batch published →): raised p50 ${alertDelayMs.raisedP50} ms, p99 ${alertDelayMs.raisedP99} ms; on the alerts subject p50 ${alertDelayMs.storedP50} ms, p99 ${alertDelayMs.storedP99} ms, max ${alertDelayMs.max} ms (${alertDelayMs.samples} alerts)`,
  );
}

if (require.main === module) {
  runTrafficBench()
    .then(printTrafficBench)
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
