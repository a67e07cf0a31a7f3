import { hashText, seededRandom as seededNumbers } from '@tollstream/simulator';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Realistic sample traffic as NDJSON, for demos and tests: deterministic for a seed and a
 * reference time ("now"), every pass within the hour before it, tolls in USD cents by vehicle class.
 */
export interface SampleOptions {
  /** Lines to write (faulty ones included). */
  count: number;
  stationIds: readonly string[];
  seed: string;
  /** Passes happen in the hour before this instant. */
  now: Date;
  /** Add a few unparseable lines, resent duplicates and one record the ingestor rejects. */
  withFaults: boolean;
}

export type SampleLineKind = 'valid' | 'unparseable' | 'duplicate' | 'rejected-by-ingestor';

export interface SampleLine {
  kind: SampleLineKind;
  text: string;
}

export type SampleStats = Record<SampleLineKind, number>;

/** Car-equivalent tolls in USD cents before the station tariff factor. */
export const baseTollCents = {
  car: 275,
  motorcycle: 140,
  bus: 825,
  truck_2_axle: 550,
  truck_3_plus_axle: 1100,
  other: 400,
} as const;

type VehicleClassName = keyof typeof baseTollCents;

const classMix: readonly [VehicleClassName, number][] = [
  ['car', 0.78],
  ['motorcycle', 0.05],
  ['bus', 0.03],
  ['truck_2_axle', 0.07],
  ['truck_3_plus_axle', 0.05],
  ['other', 0.02],
];

/** mulberry32 seeded by FNV-1a of the seed text: small, fast, and the same on every machine. */
export function seededRandom(seed: string): () => number {
  return seededNumbers(hashText(seed));
}

interface Vehicle {
  vehicleClass: VehicleClassName;
  tagId: string;
  plate: string;
  accountId: string;
}

interface Station {
  id: string;
  lanes: number;
  tariffFactor: number;
  /** Stations report local time with their UTC offset; some in UTC. */
  utcOffsetMinutes: number;
}

/** ISO 8601 with an explicit offset, e.g. 2024-05-01T03:30:00.250-05:00. */
export function formatWithOffset(instant: Date, offsetMinutes: number): string {
  if (offsetMinutes === 0) return instant.toISOString();
  const local = new Date(instant.getTime() + offsetMinutes * 60_000).toISOString().slice(0, -1);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const magnitude = Math.abs(offsetMinutes);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${local}${sign}${pad(Math.floor(magnitude / 60))}:${pad(magnitude % 60)}`;
}

export function* generateSampleLines(options: SampleOptions): Generator<SampleLine> {
  if (!Number.isSafeInteger(options.count) || options.count < 0) throw new RangeError('count must be a non-negative integer');
  if (options.stationIds.length === 0) throw new RangeError('at least one station is required');
  const random = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const digits = (length: number) => Array.from({ length }, () => Math.floor(random() * 10)).join('');
  const letters = (length: number) => Array.from({ length }, () => pick('ABCDEFGHJKLMNPRSTUVWXYZ'.split(''))).join('');
  const offsets = [0, -300, -240, -360, 60, 120];

  const stations: Station[] = options.stationIds.map((id, index) => ({
    id,
    lanes: 2 + Math.floor(random() * 7),
    tariffFactor: 0.8 + Math.round(random() * 14) / 20,
    utcOffsetMinutes: offsets[index % offsets.length] ?? 0,
  }));

  const chooseClass = (): VehicleClassName => {
    let draw = random();
    for (const [name, share] of classMix) {
      if (draw < share) return name;
      draw -= share;
    }
    return 'car';
  };
  const vehicles: Vehicle[] = Array.from({ length: Math.max(20, Math.ceil(options.count / 4)) }, () => {
    const hasTag = random() < 0.8;
    const vehicleClass = chooseClass();
    return {
      vehicleClass,
      tagId: hasTag ? `TAG-${digits(10)}` : '',
      plate: `${letters(3)} ${digits(4)}`,
      accountId: hasTag || random() < 0.3 ? `acct-${digits(6)}` : '',
    };
  });

  // Faulty slots, fixed up front so the count of lines stays exact.
  const faults = new Map<number, SampleLineKind>();
  if (options.withFaults && options.count >= 10) {
    const slots = (share: number, minimum: number) => Math.max(minimum, Math.round(options.count * share));
    const place = (kind: SampleLineKind, howMany: number, from: number) => {
      for (let placed = 0, guard = 0; placed < howMany && guard < options.count * 4; guard += 1) {
        const slot = from + Math.floor(random() * (options.count - from));
        if (!faults.has(slot)) {
          faults.set(slot, kind);
          placed += 1;
        }
      }
    };
    place('unparseable', slots(0.01, 3), 0);
    place('duplicate', slots(0.005, 2), 5); // a resend needs something sent before it
    place('rejected-by-ingestor', 1, 0);
  }

  const windowMs = 3_600_000;
  const start = options.now.getTime() - windowMs;
  // Transaction ids differ between seeds and between minutes, and repeat for the same seed and --now.
  const runTag = `${Math.floor(start / 60_000).toString(36)}${Math.floor(random() * 36 ** 3)
    .toString(36)
    .padStart(3, '0')}`;
  // Sorted pass times across the hour: each gap exponential, scaled to fit into the window.
  const gaps = Array.from({ length: options.count + 1 }, () => -Math.log(1 - random()));
  const scale = (windowMs - 1_000) / gaps.reduce((sum, gap) => sum + gap, 0);
  const sequence = new Map<string, number>();
  const recent: string[] = [];
  const unparseableKinds = ['decimal-amount', 'naive-time', 'unknown-class', 'truncated', 'missing-station'] as const;
  let unparseableCount = 0;
  let elapsedMs = 0;

  for (let index = 0; index < options.count; index += 1) {
    elapsedMs += (gaps[index] ?? 0) * scale;
    const kind = faults.get(index) ?? 'valid';
    if (kind === 'duplicate' && recent.length > 0) {
      yield { kind, text: pick(recent) };
      continue;
    }
    const station = pick(stations);
    const vehicle = pick(vehicles);
    const seq = (sequence.get(station.id) ?? 0) + 1;
    sequence.set(station.id, seq);
    const occurredAt = new Date(Math.floor(start + elapsedMs));
    const hour = (occurredAt.getUTCHours() * 60 + occurredAt.getUTCMinutes() + station.utcOffsetMinutes + 1440) % 1440 / 60;
    const peak = (hour >= 7 && hour < 9.5) || (hour >= 16 && hour < 19) ? 1.25 : 1;
    const amount = Math.round((baseTollCents[vehicle.vehicleClass] * station.tariffFactor * peak) / 5) * 5;
    const tagRead = vehicle.tagId !== '' && random() < 0.97;
    const plateRead = !tagRead || random() < 0.92;
    const record: Record<string, string | number> = {
      transaction_id: `${station.id}-${runTag}-${String(seq).padStart(6, '0')}`,
      station_id: station.id,
      lane_id: `L${String(1 + Math.floor(random() * station.lanes)).padStart(2, '0')}`,
      tag_id: tagRead ? vehicle.tagId : '',
      plate: plateRead ? vehicle.plate : '',
      account_id: tagRead || plateRead ? vehicle.accountId : '',
      vehicle_class: vehicle.vehicleClass,
      amount_minor: amount,
      currency: 'USD',
      occurred_at: formatWithOffset(occurredAt, station.utcOffsetMinutes),
    };
    if (kind === 'unparseable') {
      const fault = unparseableKinds[unparseableCount++ % unparseableKinds.length];
      if (fault === 'decimal-amount') record.amount_minor = `${(amount / 100).toFixed(2)}`;
      if (fault === 'naive-time') record.occurred_at = occurredAt.toISOString().slice(0, 19);
      if (fault === 'unknown-class') record.vehicle_class = 'hovercraft';
      if (fault === 'missing-station') delete record.station_id;
      const text = JSON.stringify(record);
      yield { kind, text: fault === 'truncated' ? text.slice(0, Math.floor(text.length / 2)) : text };
      continue;
    }
    if (kind === 'rejected-by-ingestor') record.currency = 'ZZZ'; // well-formed, but no ISO 4217 currency
    const text = JSON.stringify(record);
    if (kind === 'valid') {
      recent.push(text);
      if (recent.length > 50) recent.shift();
    }
    yield { kind: kind === 'duplicate' ? 'valid' : kind, text };
  }
}

/** Writes the sample to `path` (streamed; any count fits) and tells what went into it. */
export async function writeSampleFile(path: string, options: SampleOptions): Promise<SampleStats> {
  const stats: SampleStats = { valid: 0, unparseable: 0, duplicate: 0, 'rejected-by-ingestor': 0 };
  function* lines(): Generator<string> {
    for (const line of generateSampleLines(options)) {
      stats[line.kind] += 1;
      yield `${line.text}\n`;
    }
  }
  await pipeline(Readable.from(lines()), createWriteStream(path));
  return stats;
}
