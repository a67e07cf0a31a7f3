import { createHash } from 'node:crypto';
import { expectedVehiclesInLocalSlot, type RateOptions, type TrafficModel } from './model';

export interface ReferenceBandOptions extends RateOptions {
  /** Slot length in minutes (divides a day). Default 30. */
  slotMinutes?: number;
  /** ISO instant the reference is effective from. */
  effectiveFrom: string;
  /** minimum = minRatio × expected (default 0.4), lowered for small counts where chance alone goes below. */
  minRatio?: number;
  /** maximum = maxRatio × expected (default 2.5), raised for small counts. */
  maxRatio?: number;
}

export interface ReferenceBandRow {
  stationId: string;
  effectiveFrom: string;
  timeZone: string;
  slotMinutes: number;
  weekday: 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';
  slotStart: string;
  min: number;
  max: number;
}

const weekdays = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

/** Band around an expected count: normal traffic stays inside, a silent station or a drop to 20 % falls below when the slot has enough vehicles to tell. */
export function bandFor(expected: number, minRatio = 0.4, maxRatio = 2.5): { min: number; max: number } {
  // Counts vary like a Poisson variable: keep 3 standard deviations below and 4 above the expectation.
  const spread = Math.sqrt(expected);
  return {
    min: Math.max(0, Math.floor(Math.min(minRatio * expected, expected - 3 * spread))),
    max: Math.ceil(Math.max(maxRatio * expected, expected + 4 * spread + 3)),
  };
}

/** One row per station and slot of the week in local time, as `tollstream traffic load` reads them. */
export function referenceBandRows(model: TrafficModel, options: ReferenceBandOptions): ReferenceBandRow[] {
  const slotMinutes = options.slotMinutes ?? 30;
  if (!Number.isInteger(slotMinutes) || slotMinutes < 1 || 1440 % slotMinutes !== 0) throw new RangeError('slotMinutes must divide a day');
  const rows: ReferenceBandRow[] = [];
  model.stations.forEach((station, stationIndex) => {
    for (let weekday = 0; weekday < 7; weekday++) {
      for (let start = 0; start < 1440; start += slotMinutes) {
        const expected = expectedVehiclesInLocalSlot(model, options, stationIndex, weekday, start, slotMinutes);
        rows.push({
          stationId: station.id,
          effectiveFrom: options.effectiveFrom,
          timeZone: station.timeZone,
          slotMinutes,
          weekday: weekdays[weekday] as ReferenceBandRow['weekday'],
          slotStart: `${String(Math.floor(start / 60)).padStart(2, '0')}:${String(start % 60).padStart(2, '0')}`,
          ...bandFor(expected, options.minRatio, options.maxRatio),
        });
      }
    }
  });
  return rows;
}

export function referenceBandsCsv(rows: readonly ReferenceBandRow[]): string {
  const lines = ['station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max'];
  for (const row of rows) lines.push(`${row.stationId},${row.effectiveFrom},${row.timeZone},${row.slotMinutes},${row.weekday},${row.slotStart},${row.min},${row.max}`);
  return `${lines.join('\n')}\n`;
}

/** A station token derived from the seed: same seed ⇒ same files. For local and demo runs only. */
export function derivedStationToken(seed: string): string {
  return `sim-${createHash('sha256').update(`tollstream-simulator-token:${seed}`).digest('hex').slice(0, 40)}`;
}

/** The ingestor's INGEST_STATION_CREDENTIALS_FILE: one credential for all simulated stations. */
export function stationCredentialsJson(model: TrafficModel, token: string): string {
  return `${JSON.stringify({ stations: [{ name: 'simulator', token, stationIds: model.stations.map((station) => station.id) }] }, null, 2)}\n`;
}

/** The windower's STATION_TIME_ZONES_FILE. */
export function stationTimeZonesJson(model: TrafficModel): string {
  return `${JSON.stringify({ stations: Object.fromEntries(model.stations.map((station) => [station.id, station.timeZone])) }, null, 2)}\n`;
}

export function accountsCsv(model: TrafficModel): string {
  const lines = ['account_id,tag_id,plate,vehicle_class,monthly_threshold_minor,currency,heavy_user'];
  for (const account of model.accounts) {
    lines.push(`${account.id},${account.tagId},${account.plate},${account.vehicleClass},${account.monthlyThresholdMinor},${model.currency},${account.heavyUser}`);
  }
  return `${lines.join('\n')}\n`;
}
