/**
 * Test traffic for the windower's integration suites: a generated stream of toll transactions with
 * duplicates, out-of-order and late records, sent through a real ingestor, and an independent
 * brute-force computation of the windows the windower must produce from it.
 */
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CustomerSpendBatch, StationTrafficBatch, Streams, type TollTransaction, TransactionBatch, VehicleClass } from '@tollstream/contracts';
import { readMetrics, sumOf } from '@tollstream/service-kit';
import { seededRandom } from '@tollstream/testing';
import { windowsOf } from '@tollstream/windowing';

export type Lateness = 'on-time' | 'late' | 'very-late';

export interface GeneratedTraffic {
  /** What stations send, in sending order; some batches are sent twice (station retries). */
  sends: TollTransaction[][];
  /** Each distinct transaction once. */
  unique: TollTransaction[];
  latenessOf: Map<string, Lateness>;
  stationZones: Record<string, string>;
  /** Latest end of any traffic slot the data can fall in. */
  lastSlotEndMs: number;
}

export interface TrafficShape {
  seed: number;
  transactions: number;
  stations: number;
  accounts: number;
  batchSize: number;
  /** Event times span [startMs, startMs + spanMs). */
  startMs: number;
  spanMs: number;
  slotMs: number;
}

const CLASSES = [
  VehicleClass.VEHICLE_CLASS_CAR,
  VehicleClass.VEHICLE_CLASS_CAR,
  VehicleClass.VEHICLE_CLASS_CAR,
  VehicleClass.VEHICLE_CLASS_MOTORCYCLE,
  VehicleClass.VEHICLE_CLASS_BUS,
  VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE,
  VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE,
];

export function generateTraffic(shape: TrafficShape): GeneratedTraffic {
  const next = seededRandom(shape.seed);
  const stationIds = Array.from({ length: shape.stations }, (_, i) => `st-${String(i).padStart(3, '0')}`);
  // A few stations in a zone whose 30-minute slots are not aligned with UTC's (+05:45).
  const stationZones: Record<string, string> = {};
  for (const station of stationIds.slice(0, 3)) stationZones[station] = 'Asia/Kathmandu';
  const unique: TollTransaction[] = [];
  const latenessOf = new Map<string, Lateness>();
  for (let i = 0; i < shape.transactions; i++) {
    const nominal = shape.startMs + Math.floor((i / shape.transactions) * shape.spanMs);
    const roll = next();
    let lateness: Lateness = 'on-time';
    // Out of order within about the bound: up to 3 s early.
    let occurredAtMs = nominal - Math.floor(next() * 3_000);
    if (roll < 0.002) {
      lateness = 'very-late';
      occurredAtMs = nominal - 40 * 60_000;
    } else if (roll < 0.012) {
      lateness = 'late';
      occurredAtMs = nominal - 20_000 - Math.floor(next() * 280_000);
    }
    const station = stationIds[Math.floor(next() * stationIds.length)];
    const accountNumber = Math.floor(next() * shape.accounts);
    const withAccount = next() >= 0.1;
    const vehicleClass = CLASSES[Math.floor(next() * CLASSES.length)];
    const transactionId = `tx-${shape.seed}-${i}`;
    latenessOf.set(`${station}/${transactionId}`, lateness);
    unique.push({
      transactionId,
      stationId: station,
      laneId: `L${1 + Math.floor(next() * 4)}`,
      tagId: withAccount ? `TAG-${accountNumber}` : '',
      plate: `P ${i % 10_000}`,
      accountId: withAccount ? `acct-${String(accountNumber).padStart(5, '0')}` : '',
      vehicleClass,
      amountMinor: 100 + vehicleClass * 125 + Math.floor(next() * 50),
      // Some accounts are billed in another currency: results never mix currencies.
      currency: accountNumber % 50 === 0 ? 'EUR' : 'USD',
      occurredAt: new Date(occurredAtMs),
    });
  }
  const sends: TollTransaction[][] = [];
  for (let start = 0; start < unique.length; start += shape.batchSize) {
    sends.push(unique.slice(start, start + shape.batchSize));
    // A station retrying a batch it already sent (its acknowledgement was lost): 5% of batches.
    if (sends.length > 3 && next() < 0.05) sends.push(sends[sends.length - 3 - Math.floor(next() * 3)]);
  }
  const lastSlotEndMs = Math.ceil((shape.startMs + shape.spanMs) / shape.slotMs) * shape.slotMs + shape.slotMs;
  return { sends, unique, latenessOf, stationZones, lastSlotEndMs };
}

export interface WindowerOutput {
  /** Latest revision of every spend window: key account/currency/partition/start. */
  spend: Map<string, { amountMinor: number; count: number; revision: number }>;
  /** Latest revision of every traffic window: key station/start. */
  traffic: Map<string, { count: number; byClass: Map<number, number>; revision: number; timeZone: string }>;
  /** Transaction keys (station/transaction id) on the late subjects. */
  lateSpend: Set<string>;
  lateTraffic: Set<string>;
  /** Problems that must never happen: one result id with two contents, missing revisions. */
  inconsistencies: string[];
  /** Newest watermark per source partition (from traffic batches). */
  watermarks: Map<number, number>;
  messages: number;
}

/** Reads TOLL_AGG whole and keeps the latest revision per window, checking every result on the way. */
export async function readWindowerOutput(nc: NatsConnection): Promise<WindowerOutput> {
  const output: WindowerOutput = {
    spend: new Map(),
    traffic: new Map(),
    lateSpend: new Set(),
    lateTraffic: new Set(),
    inconsistencies: [],
    watermarks: new Map(),
    messages: 0,
  };
  const contentById = new Map<string, string>();
  const revisions = new Map<string, number[]>();
  const seen = (resultId: string, identity: string, revision: number, content: string) => {
    const earlier = contentById.get(resultId);
    if (earlier !== undefined && earlier !== content) output.inconsistencies.push(`${resultId} published with two contents`);
    if (earlier !== undefined) return false;
    contentById.set(resultId, content);
    const list = revisions.get(identity) ?? [];
    list.push(revision);
    revisions.set(identity, list);
    return true;
  };
  const info = await (await jetstreamManager(nc)).streams.info(Streams.aggregates);
  const messages = info.state.messages > 0
    ? await (await jetstream(nc).consumers.get(Streams.aggregates, { deliver_policy: DeliverPolicy.All })).consume({ max_messages: 512 })
    : [];
  for await (const message of messages) {
    output.messages++;
    if (message.subject.startsWith('tolls.agg.spend.')) {
      for (const window of CustomerSpendBatch.decode(message.data).windows) {
        const identity = `${window.accountId}/${window.currency}/${window.sourcePartition}/${window.windowStart?.getTime()}`;
        if (!seen(window.resultId, identity, window.revision, `${window.amountMinor}/${window.transactionCount}`)) continue;
        const current = output.spend.get(identity);
        if (!current || current.revision < window.revision) {
          output.spend.set(identity, { amountMinor: window.amountMinor, count: window.transactionCount, revision: window.revision });
        }
      }
    } else if (message.subject.startsWith('tolls.agg.traffic.')) {
      const batch = StationTrafficBatch.decode(message.data);
      output.watermarks.set(batch.sourcePartition, Math.max(output.watermarks.get(batch.sourcePartition) ?? 0, batch.watermark?.getTime() ?? 0));
      for (const window of batch.windows) {
        const identity = `${window.stationId}/${window.windowStart?.getTime()}`;
        const byClass = new Map(window.countsByClass.map((c) => [c.vehicleClass as number, c.vehicleCount]));
        if (!seen(window.resultId, identity, window.revision, `${window.vehicleCount}/${JSON.stringify([...byClass])}`)) continue;
        const current = output.traffic.get(identity);
        if (!current || current.revision < window.revision) {
          output.traffic.set(identity, { count: window.vehicleCount, byClass, revision: window.revision, timeZone: window.timeZone });
        }
      }
    } else if (message.subject.startsWith('tolls.agg.late.')) {
      const late = message.subject.startsWith('tolls.agg.late.spend.') ? output.lateSpend : output.lateTraffic;
      for (const ingested of TransactionBatch.decode(message.data).transactions) {
        late.add(`${ingested.transaction?.stationId}/${ingested.transaction?.transactionId}`);
      }
    }
    if (message.seq >= info.state.last_seq) break;
  }
  for (const [identity, list] of revisions) {
    const sorted = [...list].sort((a, b) => a - b);
    if (sorted.some((revision, index) => revision !== index + 1)) output.inconsistencies.push(`${identity} has revisions ${sorted.join(',')}`);
  }
  return output;
}

export interface ExpectedWindows {
  /** Key account/currency/start (summed over partitions). */
  spend: Map<string, { amountMinor: number; count: number }>;
  /** Key station/start. */
  traffic: Map<string, { count: number; byClass: Map<number, number> }>;
}

/**
 * Brute force over the distinct transactions: every window computed from scratch, leaving out only
 * the records the windower reported as too late (whose lateness the test checks separately).
 */
export function bruteForceWindows(
  traffic: GeneratedTraffic,
  late: { spend: Set<string>; traffic: Set<string> },
  spendWindowMs: number,
  slotMs: number,
): ExpectedWindows {
  const expected: ExpectedWindows = { spend: new Map(), traffic: new Map() };
  for (const transaction of traffic.unique) {
    const key = `${transaction.stationId}/${transaction.transactionId}`;
    const t = transaction.occurredAt?.getTime() ?? 0;
    if (transaction.accountId && !late.spend.has(key)) {
      for (const window of windowsOf({ kind: 'tumbling', sizeMs: spendWindowMs }, t, 'UTC')) {
        const id = `${transaction.accountId}/${transaction.currency}/${window.startMs}`;
        const sum = expected.spend.get(id) ?? { amountMinor: 0, count: 0 };
        sum.amountMinor += transaction.amountMinor;
        sum.count++;
        expected.spend.set(id, sum);
      }
    }
    if (!late.traffic.has(key)) {
      const zone = traffic.stationZones[transaction.stationId] ?? 'UTC';
      for (const window of windowsOf({ kind: 'tumbling', sizeMs: slotMs }, t, zone)) {
        const id = `${transaction.stationId}/${window.startMs}`;
        const count = expected.traffic.get(id) ?? { count: 0, byClass: new Map<number, number>() };
        count.count++;
        count.byClass.set(transaction.vehicleClass, (count.byClass.get(transaction.vehicleClass) ?? 0) + 1);
        expected.traffic.set(id, count);
      }
    }
  }
  return expected;
}

/** The windower's spend summed over source partitions, in the brute force's keys. */
export function spendAcrossPartitions(output: WindowerOutput): Map<string, { amountMinor: number; count: number }> {
  const total = new Map<string, { amountMinor: number; count: number }>();
  for (const [identity, window] of output.spend) {
    const [account, currency, , start] = identity.split('/');
    const id = `${account}/${currency}/${start}`;
    const sum = total.get(id) ?? { amountMinor: 0, count: 0 };
    sum.amountMinor += window.amountMinor;
    sum.count += window.count;
    total.set(id, sum);
  }
  // A window whose records all moved elsewhere (never happens for tumbling) would show as zero: drop zeros.
  for (const [id, sum] of total) if (sum.count === 0) total.delete(id);
  return total;
}

export function trafficWithoutRevisions(output: WindowerOutput): Map<string, { count: number; byClass: Map<number, number> }> {
  return new Map([...output.traffic].map(([id, window]) => [id, { count: window.count, byClass: window.byClass }]));
}

/** Reads one gauge or counter value from a service's /metrics (sum over labels). */
export async function metricValue(httpPort: number, name: string): Promise<number> {
  return sumOf(await readMetrics(`http://127.0.0.1:${httpPort}/metrics`), name) ?? 0;
}
