import { windowsOf } from '@tollstream/windowing';
import { localWeekdayMinute } from './reference';

/** One row of the warehouse view tolls.traffic_per_station_slot (30-minute slots aligned in UTC). */
export interface SlotCountRow {
  stationId: string;
  slotStartMs: number;
  vehicles: number;
}

export interface ProposeOptions {
  /** Stations and their zones; stations only in the rows get defaultTimeZone. */
  stations: Map<string, string>;
  defaultTimeZone: string;
  /** History used: the whole weeks before untilMs. */
  weeks: number;
  untilMs: number;
  /** min = floor(minRatio × median of the same slot over the weeks); max = ceil(maxRatio × median), none when maxRatio is 0. */
  minRatio: number;
  maxRatio: number;
  effectiveFromMs: number;
  slotMinutes?: number;
}

const weekdays = ['', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The zone's offsets are whole half hours over the period (so UTC-aligned 30-minute slots are its local slots). */
function alignedWithUtcSlots(zone: string, fromMs: number, untilMs: number, slotMs: number): boolean {
  for (let t = fromMs; t < untilMs; t += 86_400_000) {
    if (windowsOf({ kind: 'tumbling', sizeMs: slotMs }, t, zone)[0].startMs % slotMs !== 0) return false;
  }
  return true;
}

/**
 * Proposes reference thresholds from history: for each station and slot of its local week, the
 * median count of that slot over the last `weeks` weeks (a slot without any record counts 0), times
 * the ratios. Returns a reference CSV (tollstream traffic load) and the stations skipped with reasons.
 */
export function proposeReferences(rows: SlotCountRow[], options: ProposeOptions): { csv: string; skipped: string[] } {
  const slotMinutes = options.slotMinutes ?? 30;
  const slotMs = slotMinutes * 60_000;
  const fromMs = options.untilMs - options.weeks * 7 * 86_400_000;
  const counts = new Map<string, number>();
  const stations = new Map(options.stations);
  for (const row of rows) {
    counts.set(`${row.stationId}/${row.slotStartMs}`, (counts.get(`${row.stationId}/${row.slotStartMs}`) ?? 0) + row.vehicles);
    if (!stations.has(row.stationId)) stations.set(row.stationId, options.defaultTimeZone);
  }
  const lines = ['station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max'];
  const skipped: string[] = [];
  const effectiveFrom = new Date(options.effectiveFromMs).toISOString();
  for (const [stationId, zone] of [...stations].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!alignedWithUtcSlots(zone, fromMs, options.untilMs, slotMs)) {
      skipped.push(`${stationId}: time zone ${zone} is not aligned with the warehouse's UTC ${slotMinutes}-minute slots`);
      continue;
    }
    const samples = new Map<string, number[]>();
    for (let t = fromMs; t < options.untilMs; ) {
      const slot = windowsOf({ kind: 'tumbling', sizeMs: slotMs }, t, zone)[0];
      if (slot.startMs >= fromMs && slot.endMs <= options.untilMs) {
        const { weekday, minute } = localWeekdayMinute(slot.startMs, zone);
        const key = `${weekday}/${minute}`;
        samples.set(key, [...(samples.get(key) ?? []), counts.get(`${stationId}/${slot.startMs}`) ?? 0]);
      }
      t = slot.endMs;
    }
    for (const [key, values] of [...samples].sort(([a], [b]) => {
      const [wa, ma] = a.split('/').map(Number);
      const [wb, mb] = b.split('/').map(Number);
      return wa - wb || ma - mb;
    })) {
      const [weekday, minute] = key.split('/').map(Number);
      const m = median(values);
      const min = Math.floor(m * options.minRatio);
      const max = options.maxRatio > 0 ? Math.max(min, Math.ceil(m * options.maxRatio)) : '';
      const hhmm = `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
      lines.push(`${stationId},${effectiveFrom},${zone},${slotMinutes},${weekdays[weekday]},${hhmm},${min},${max}`);
    }
  }
  return { csv: `${lines.join('\n')}\n`, skipped };
}
