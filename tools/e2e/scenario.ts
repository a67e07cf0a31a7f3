/**
 * The golden scenario: generated deterministically from a seed, with its expected results computed
 * here by plain arithmetic over the generated records (no service library is used for that).
 */
import { VehicleClass, type TollTransaction } from '@tollstream/contracts';
import { seededRandom } from '@tollstream/testing';

export const SLOT_MS = 60_000;
/** Both the windower's and traffic-anomaly's TRAFFIC_WINDOW. */
export const TRAFFIC_WINDOW = 'tumbling:1m';
export const CURRENCY = 'USD';

export interface StationSpec {
  id: string;
  zone: string;
  /** Reference band of the evaluated slot; absent: no reference data (never evaluated). */
  band?: { min: number; max?: number };
  /** Accepted records inside the evaluated slot. */
  slotCount: number;
}

/** Two+ time zones; one silent in the evaluated slot, one below, one above, two within; three without reference. */
export const STATIONS: StationSpec[] = [
  { id: 'st-ktm-ok', zone: 'Asia/Kathmandu', band: { min: 5, max: 10 }, slotCount: 8 },
  { id: 'st-ktm-low', zone: 'Asia/Kathmandu', band: { min: 5, max: 10 }, slotCount: 2 },
  { id: 'st-nyc-ok', zone: 'America/New_York', band: { min: 4, max: 12 }, slotCount: 6 },
  { id: 'st-nyc-silent', zone: 'America/New_York', band: { min: 3 }, slotCount: 0 },
  { id: 'st-utc-high', zone: 'UTC', band: { min: 5, max: 10 }, slotCount: 14 },
  { id: 'st-utc-f1', zone: 'UTC', slotCount: 0 },
  { id: 'st-utc-f2', zone: 'UTC', slotCount: 0 },
  { id: 'st-nyc-f3', zone: 'America/New_York', slotCount: 0 },
];
const FILLERS = STATIONS.filter((station) => !station.band).map((station) => station.id);

export const ACCOUNTS = Array.from({ length: 30 }, (_, index) => `acct-${String(index).padStart(2, '0')}`);
/** Crosses its threshold at a known record: 6 × 500 at one station, 10 s apart; threshold 1,500 → the 3rd. */
export const KNOWN_ACCOUNT = 'acct-known';
export const KNOWN_AMOUNT = 500;
export const KNOWN_THRESHOLD = 1_500;

const AMOUNTS: Record<number, number> = {
  [VehicleClass.VEHICLE_CLASS_CAR]: 250,
  [VehicleClass.VEHICLE_CLASS_MOTORCYCLE]: 120,
  [VehicleClass.VEHICLE_CLASS_BUS]: 600,
  [VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE]: 900,
  [VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE]: 1_400,
};
const CLASSES = Object.keys(AMOUNTS).map(Number) as VehicleClass[];

export interface Malformed {
  record: TollTransaction;
  field: string;
  reasonCode: string;
}

export interface Scenario {
  seed: number;
  /** Start of the evaluated traffic slot (a whole minute, in the past). */
  slotStartMs: number;
  /** Backfill of the recent past (includes the evaluated slot): batches in send order, with resent duplicates. */
  backfill: TollTransaction[][];
  /** Live part: batches with occurredAt offsets (ms) from the moment sending starts, see `materializeLive`. */
  live: Array<Array<{ record: TollTransaction; offsetMs: number }>>;
  liveRecordsPerSecond: number;
  malformed: Malformed[];
}

function pick<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)];
}

function aRecord(next: () => number, id: string, stationId: string, occurredAtMs: number, accountId = pick(next, ACCOUNTS)): TollTransaction {
  const vehicleClass = pick(next, CLASSES);
  return {
    transactionId: id,
    stationId,
    laneId: `L${1 + Math.floor(next() * 4)}`,
    tagId: `TAG-${accountId}`,
    plate: '',
    accountId,
    vehicleClass,
    amountMinor: AMOUNTS[vehicleClass],
    currency: CURRENCY,
    occurredAt: new Date(occurredAtMs),
  };
}

/** Splits into batches and resends ~3 % of the records again 2–4 batches later (stations retrying). */
function batchesWithDuplicates<T>(next: () => number, items: T[], batchSize: number): T[][] {
  const batches: T[][] = [];
  for (let index = 0; index < items.length; index += batchSize) batches.push(items.slice(index, index + batchSize));
  const resend: Array<{ at: number; item: T }> = [];
  batches.forEach((batch, index) => {
    for (const item of batch) if (next() < 0.03) resend.push({ at: Math.min(batches.length - 1, index + 2 + Math.floor(next() * 3)), item });
  });
  for (const { at, item } of resend) batches[at].push(item);
  return batches;
}

/** Swaps neighbours less than 800 ms apart (within the windower's 1 s out-of-orderness). */
function disorder<T>(next: () => number, items: T[], timeOf: (item: T) => number): void {
  for (let index = 1; index < items.length; index++) {
    if (next() < 0.2 && Math.abs(timeOf(items[index]) - timeOf(items[index - 1])) < 800) {
      [items[index - 1], items[index]] = [items[index], items[index - 1]];
    }
  }
}

export function generateScenario(options: { seed: number; nowMs: number; liveSeconds: number; liveRecordsPerSecond: number; fillerPerStation: number }): Scenario {
  const next = seededRandom(options.seed);
  const slotStartMs = Math.floor((options.nowMs - 150_000) / SLOT_MS) * SLOT_MS;
  let sequence = 0;
  const newId = (prefix: string) => `${prefix}-${options.seed}-${String(sequence++).padStart(7, '0')}`;
  const backfill: TollTransaction[] = [];
  // Stations with a reference: exactly slotCount records in the slot, a few just before and after.
  for (const station of STATIONS.filter((s) => s.band)) {
    for (let i = 0; i < station.slotCount; i++) backfill.push(aRecord(next, newId('tx'), station.id, slotStartMs + 500 + Math.floor(next() * (SLOT_MS - 1_000))));
    for (let i = 0; i < 3; i++) backfill.push(aRecord(next, newId('tx'), station.id, slotStartMs - 5_000 + Math.floor(next() * 4_500)));
    for (let i = 0; i < 3; i++) backfill.push(aRecord(next, newId('tx'), station.id, slotStartMs + SLOT_MS + 500 + Math.floor(next() * 9_000)));
  }
  // Fillers: volume over [slot start - 5 s, slot end + 10 s).
  for (const stationId of FILLERS) {
    for (let i = 0; i < options.fillerPerStation; i++) backfill.push(aRecord(next, newId('tx'), stationId, slotStartMs - 5_000 + Math.floor(next() * (SLOT_MS + 15_000))));
  }
  // The known crossing: one station (one partition, results in order), 10 s apart (separate 1 s windows).
  for (let i = 0; i < 6; i++) {
    const record = aRecord(next, newId('tx-known'), 'st-utc-f1', slotStartMs + 1_000 + i * 10_000, KNOWN_ACCOUNT);
    backfill.push({ ...record, vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, amountMinor: KNOWN_AMOUNT });
  }
  const time = (record: TollTransaction) => record.occurredAt?.getTime() ?? 0;
  backfill.sort((a, b) => time(a) - time(b));
  disorder(next, backfill, time);
  // A few filler records arrive 3–4 s late (beyond the out-of-orderness: the late path).
  const lateCount = Math.max(3, Math.floor(backfill.length * 0.01));
  for (let i = 0; i < lateCount; i++) {
    const index = Math.floor(next() * (backfill.length - 200));
    const record = backfill[index];
    if (!FILLERS.includes(record.stationId) || record.accountId === KNOWN_ACCOUNT) continue;
    backfill.splice(index, 1);
    let to = index;
    while (to < backfill.length - 1 && time(backfill[to]) < time(record) + 3_500) to++;
    backfill.splice(to, 0, record);
  }
  // Malformed records, each rejected by the ingestor for a known field.
  const base = (id: string) => aRecord(next, id, 'st-utc-f2', slotStartMs + 20_000);
  const malformed: Malformed[] = [
    { record: { ...base(newId('bad')), amountMinor: 2_000_000 }, field: 'amount_minor', reasonCode: 'INVALID_FIELD' },
    { record: { ...base(newId('bad')), currency: 'EURO' }, field: 'currency', reasonCode: 'INVALID_FIELD' },
    { record: { ...base(newId('bad')), plate: 'abc 123', tagId: '' }, field: 'plate', reasonCode: 'INVALID_FIELD' },
    { record: { ...base(newId('bad')), vehicleClass: 42 as VehicleClass }, field: 'vehicle_class', reasonCode: 'INVALID_FIELD' },
    { record: { ...base(newId('bad')), laneId: '' }, field: 'lane_id', reasonCode: 'INVALID_FIELD' },
    { record: { ...base(newId('bad')), occurredAt: new Date(options.nowMs + 3_600_000) }, field: 'occurred_at', reasonCode: 'IN_FUTURE' },
  ];
  const backfillBatches = batchesWithDuplicates(next, backfill, 100);
  malformed.forEach((bad, index) => backfillBatches[Math.min(backfillBatches.length - 1, 1 + index * 2)].push(bad.record));

  // Live part: event time = the moment the record is due to be sent.
  const live: Array<{ record: TollTransaction; offsetMs: number }> = [];
  const liveStations = STATIONS.filter((station) => station.id !== 'st-nyc-silent').map((station) => station.id);
  const total = options.liveSeconds * options.liveRecordsPerSecond;
  for (let i = 0; i < total; i++) {
    const offsetMs = Math.floor((i * 1_000) / options.liveRecordsPerSecond);
    live.push({ record: aRecord(next, newId('live'), pick(next, liveStations), 0), offsetMs });
  }
  disorder(next, live, (item) => item.offsetMs);
  return {
    seed: options.seed,
    slotStartMs,
    backfill: backfillBatches,
    live: batchesWithDuplicates(next, live, 250),
    liveRecordsPerSecond: options.liveRecordsPerSecond,
    malformed,
  };
}

/** Sets the live records' occurredAt from the moment sending starts (each ≤ the time it is due). */
export function materializeLive(scenario: Scenario, startMs: number): TollTransaction[][] {
  return scenario.live.map((batch) => batch.map(({ record, offsetMs }) => ({ ...record, occurredAt: new Date(startMs + offsetMs) })));
}

/** Every distinct valid record (first occurrence of each id). */
export function acceptedRecords(scenario: Scenario, liveBatches: TollTransaction[][]): TollTransaction[] {
  const bad = new Set(scenario.malformed.map((m) => m.record.transactionId));
  const unique = new Map<string, TollTransaction>();
  for (const record of [...scenario.backfill.flat(), ...liveBatches.flat()]) {
    if (!bad.has(record.transactionId) && !unique.has(`${record.stationId}/${record.transactionId}`)) unique.set(`${record.stationId}/${record.transactionId}`, record);
  }
  return [...unique.values()];
}

/** "YYYY-MM" of a UTC instant (OPERATOR_TIME_ZONE=UTC). */
export function monthOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

export interface MonthSpend {
  totalMinor: number;
  count: number;
}

/** account/month → spend, in integer minor units. */
export function expectedSpend(records: TollTransaction[]): Map<string, MonthSpend> {
  const spend = new Map<string, MonthSpend>();
  for (const record of records) {
    if (!record.accountId) continue;
    const key = `${record.accountId}/${monthOf(record.occurredAt?.getTime() ?? 0)}`;
    const entry = spend.get(key) ?? { totalMinor: 0, count: 0 };
    entry.totalMinor += record.amountMinor;
    entry.count += 1;
    spend.set(key, entry);
  }
  return spend;
}

/** Thresholds: 10 cross once (60 %), 10 never (total + 1,000), 2 exactly at the total, 8 none; plus the known crossing. */
export function thresholdsFor(spend: Map<string, MonthSpend>): Map<string, number> {
  const perAccount = new Map<string, number>();
  for (const [key, value] of spend) perAccount.set(key.split('/')[0], (perAccount.get(key.split('/')[0]) ?? 0) + value.totalMinor);
  const thresholds = new Map<string, number>();
  ACCOUNTS.forEach((account, index) => {
    const total = perAccount.get(account) ?? 0;
    if (index < 10) thresholds.set(account, Math.max(1, Math.floor(total * 0.6)));
    else if (index < 20) thresholds.set(account, total + 1_000);
    else if (index < 22) thresholds.set(account, Math.max(1, total));
  });
  thresholds.set(KNOWN_ACCOUNT, KNOWN_THRESHOLD);
  return thresholds;
}

/** spending/<account>/<YYYY-MM>/v1 for every month whose total reaches the threshold (set once: version 1). */
export function expectedSpendingAlerts(spend: Map<string, MonthSpend>, thresholds: Map<string, number>, effectiveMonth: Map<string, string>): Set<string> {
  const ids = new Set<string>();
  for (const [key, value] of spend) {
    const [account, month] = key.split('/');
    const threshold = thresholds.get(account);
    if (threshold !== undefined && month >= (effectiveMonth.get(account) ?? '9999') && value.totalMinor >= threshold) ids.add(`spending/${account}/${month}/v1`);
  }
  return ids;
}

const WEEKDAYS: Record<string, string> = { Sun: 'sun', Mon: 'mon', Tue: 'tue', Wed: 'wed', Thu: 'thu', Fri: 'fri', Sat: 'sat' };

/** Local weekday and HH:MM of an instant in a zone. */
export function localSlotOf(ms: number, zone: string): { weekday: string; hhmm: string } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date(ms));
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { weekday: WEEKDAYS[part('weekday')] ?? '', hhmm: `${part('hour')}:${part('minute')}` };
}

export interface ReferenceBand {
  stationId: string;
  timeZone: string;
  /** 1 = Monday … 7 = Sunday (tolls.traffic.v1.Weekday). */
  weekday: number;
  /** Local start of the slot, minutes after midnight. */
  startMinute: number;
  minimum: number;
  maximum?: number;
}

const WEEKDAY_NUMBERS: Record<string, number> = { mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6, sun: 7 };

/** Reference data: one band per station with a reference, for the evaluated slot only (local weekday and time). */
export function referenceBands(scenario: Scenario): ReferenceBand[] {
  return STATIONS.filter((station) => station.band).map((station) => {
    const { weekday, hhmm } = localSlotOf(scenario.slotStartMs, station.zone);
    const [hours, minutes] = hhmm.split(':').map(Number);
    return { stationId: station.id, timeZone: station.zone, weekday: WEEKDAY_NUMBERS[weekday], startMinute: hours * 60 + minutes, minimum: station.band?.min ?? 0, maximum: station.band?.max };
  });
}

export interface ExpectedTrafficAlert {
  stationId: string;
  condition: 'BELOW_MINIMUM' | 'ABOVE_MAXIMUM';
  count: number;
}

/** Station × evaluated slot: counted from the accepted records, compared with the band. */
export function expectedTrafficAlerts(scenario: Scenario, accepted: TollTransaction[]): ExpectedTrafficAlert[] {
  const alerts: ExpectedTrafficAlert[] = [];
  for (const station of STATIONS) {
    if (!station.band) continue;
    const count = accepted.filter((r) => {
      const t = r.occurredAt?.getTime() ?? 0;
      return r.stationId === station.id && t >= scenario.slotStartMs && t < scenario.slotStartMs + SLOT_MS;
    }).length;
    if (count < station.band.min) alerts.push({ stationId: station.id, condition: 'BELOW_MINIMUM', count });
    else if (station.band.max !== undefined && count > station.band.max) alerts.push({ stationId: station.id, condition: 'ABOVE_MAXIMUM', count });
  }
  return alerts;
}
