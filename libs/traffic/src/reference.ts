import { createHash } from 'node:crypto';
import type { StationReferenceRecord, TrafficBandRecord, TrafficReferenceVersionRecord } from '@tollstream/stores';
import { isValidTimeZone } from '@tollstream/windowing';

/** Weekdays as in ISO 8601: 1 = Monday .. 7 = Sunday. */
const weekdayNames: Record<string, number> = { mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6, sun: 7 };
const weekdayShort = ['', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const maxCount = 4_294_967_295;

/** One error in a reference file: line (CSV) or JSON path, field, message. */
export interface ReferenceFileError {
  line?: number;
  path?: string;
  field: string;
  message: string;
}

export class ReferenceFileInvalid extends Error {
  constructor(readonly errors: ReferenceFileError[]) {
    super(errors.slice(0, 20).map(formatReferenceError).join('\n') + (errors.length > 20 ? `\n… ${errors.length - 20} more` : ''));
    this.name = 'ReferenceFileInvalid';
  }
}

export function formatReferenceError(error: ReferenceFileError): string {
  const where = error.line !== undefined ? `line ${error.line}` : (error.path ?? 'file');
  return `${where}: ${error.field}: ${error.message}`;
}

/** One station version of a parsed file (before it is merged into the store). */
export type ParsedReferenceVersion = { stationId: string } & TrafficReferenceVersionRecord;

interface Row {
  where: { line?: number; path?: string };
  stationId: unknown;
  effectiveFrom: unknown;
  timeZone: unknown;
  slotMinutes: unknown;
  weekday: unknown;
  slotStart: unknown;
  min: unknown;
  max: unknown;
}

/** CSV header: station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max (max may be empty). */
export const referenceCsvColumns = ['station_id', 'effective_from', 'time_zone', 'slot_minutes', 'weekday', 'slot_start', 'min', 'max'] as const;

/**
 * Parses and validates a whole reference file (CSV or JSON). Throws ReferenceFileInvalid naming every
 * bad line/path and field; returns nothing partial.
 *
 * JSON: {"references":[{"station_id","effective_from","time_zone","slot_minutes"?,"slots":[{"weekday":"mon","start":"07:30","min":10,"max":80}]}]}
 */
export function parseReferenceFile(text: string, format: 'csv' | 'json'): ParsedReferenceVersion[] {
  const errors: ReferenceFileError[] = [];
  const rows = format === 'csv' ? csvRows(text, errors) : jsonRows(text, errors);
  const versions = new Map<string, ParsedReferenceVersion>();
  for (const row of rows) {
    const rowErrors: ReferenceFileError[] = [];
    const err = (field: string, message: string) => rowErrors.push({ ...row.where, field, message });
    const stationId = typeof row.stationId === 'string' ? row.stationId.trim() : '';
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(stationId)) err('station_id', 'required: 1-64 characters of A-Z a-z 0-9 _ . : -');
    const effectiveFromMs = typeof row.effectiveFrom === 'string' && /^\d{4}-\d\d-\d\dT/.test(row.effectiveFrom) ? Date.parse(row.effectiveFrom) : NaN;
    if (!Number.isFinite(effectiveFromMs)) err('effective_from', 'required: an ISO 8601 instant with offset, e.g. 2026-11-01T00:00:00Z');
    const timeZone = typeof row.timeZone === 'string' ? row.timeZone.trim() : '';
    if (!isValidTimeZone(timeZone)) err('time_zone', 'required: an IANA time zone, e.g. Asia/Kathmandu');
    const slotMinutes = row.slotMinutes === undefined || row.slotMinutes === '' ? 30 : Number(row.slotMinutes);
    if (!Number.isInteger(slotMinutes) || slotMinutes < 1 || 1440 % slotMinutes !== 0) err('slot_minutes', 'must be a whole number of minutes dividing a day (e.g. 15, 30, 60)');
    const weekday = typeof row.weekday === 'string' ? weekdayNames[row.weekday.trim().toLowerCase().slice(0, 3)] : undefined;
    if (weekday === undefined) err('weekday', 'required: mon, tue, wed, thu, fri, sat or sun');
    const startMatch = typeof row.slotStart === 'string' ? /^(\d\d):(\d\d)$/.exec(row.slotStart.trim()) : null;
    const startMinute = startMatch ? Number(startMatch[1]) * 60 + Number(startMatch[2]) : NaN;
    if (!startMatch || Number(startMatch[1]) > 23 || Number(startMatch[2]) > 59) err('slot_start', 'required: local time HH:MM');
    else if (Number.isInteger(slotMinutes) && slotMinutes > 0 && startMinute % slotMinutes !== 0) err('slot_start', `must be a multiple of slot_minutes (${slotMinutes})`);
    const min = countOf(row.min);
    if (min === undefined) err('min', 'required: a whole number of vehicles >= 0');
    const max = row.max === undefined || row.max === '' || row.max === null ? null : countOf(row.max);
    if (max === undefined) err('max', 'a whole number of vehicles, or empty for no maximum');
    else if (max !== null && min !== undefined && max < min) err('max', `must be >= min (${min})`);
    if (rowErrors.length > 0) {
      errors.push(...rowErrors);
      continue;
    }
    const key = `${stationId}@${effectiveFromMs}`;
    let version = versions.get(key);
    if (!version) {
      version = { stationId, version: '', effectiveFromMs, timeZone, slotMinutes, bands: {} };
      versions.set(key, version);
    } else if (version.timeZone !== timeZone || version.slotMinutes !== slotMinutes) {
      errors.push({ ...row.where, field: version.timeZone !== timeZone ? 'time_zone' : 'slot_minutes', message: `differs from earlier rows of ${stationId} effective ${row.effectiveFrom as string}` });
      continue;
    }
    const bandKey = `${weekday}/${startMinute / slotMinutes}`;
    if (version.bands[bandKey]) {
      errors.push({ ...row.where, field: 'slot_start', message: `duplicate slot ${weekdayShort[weekday as number]} ${row.slotStart as string} for ${stationId}` });
      continue;
    }
    const band: TrafficBandRecord = { min: min as number };
    if (max !== null && max !== undefined) band.max = max;
    version.bands[bandKey] = band;
  }
  if (errors.length > 0) throw new ReferenceFileInvalid(errors);
  if (versions.size === 0) throw new ReferenceFileInvalid([{ field: 'file', message: 'no reference rows' }]);
  for (const version of versions.values()) version.version = versionIdOf(version);
  return [...versions.values()];
}

function countOf(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= maxCount ? n : undefined;
}

/** Deterministic: effective-from instant + hash of the content, so a changed band is a new version id. */
export function versionIdOf(version: Omit<TrafficReferenceVersionRecord, 'version'>): string {
  const bands = Object.keys(version.bands)
    .sort()
    .map((key) => [key, version.bands[key].min, version.bands[key].max ?? null]);
  const hash = createHash('sha256').update(JSON.stringify([version.effectiveFromMs, version.timeZone, version.slotMinutes, bands])).digest('hex').slice(0, 10);
  return `${new Date(version.effectiveFromMs).toISOString()}#${hash}`;
}

function csvRows(text: string, errors: ReferenceFileError[]): Row[] {
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split(',').map((cell) => cell.trim().toLowerCase());
  const index = new Map(header.map((name, i) => [name, i]));
  for (const column of referenceCsvColumns) {
    if (column !== 'max' && column !== 'slot_minutes' && !index.has(column)) errors.push({ line: 1, field: column, message: 'missing column in the header' });
  }
  if (errors.length > 0) return [];
  const rows: Row[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const cells = line.split(',').map((cell) => cell.trim());
    if (cells.length > header.length) {
      errors.push({ line: i + 1, field: 'row', message: `${cells.length} fields, the header has ${header.length}` });
      continue;
    }
    const cell = (name: string) => (index.has(name) ? (cells[index.get(name) as number] ?? '') : undefined);
    rows.push({
      where: { line: i + 1 },
      stationId: cell('station_id'),
      effectiveFrom: cell('effective_from'),
      timeZone: cell('time_zone'),
      slotMinutes: cell('slot_minutes'),
      weekday: cell('weekday'),
      slotStart: cell('slot_start'),
      min: cell('min'),
      max: cell('max'),
    });
  }
  return rows;
}

function jsonRows(text: string, errors: ReferenceFileError[]): Row[] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    errors.push({ path: '$', field: 'file', message: `not JSON: ${(error as Error).message}` });
    return [];
  }
  const references = (document as { references?: unknown })?.references;
  if (!Array.isArray(references)) {
    errors.push({ path: '$', field: 'references', message: 'required: an array' });
    return [];
  }
  const rows: Row[] = [];
  references.forEach((reference: Record<string, unknown>, i) => {
    const path = `references[${i}]`;
    if (typeof reference !== 'object' || reference === null || !Array.isArray(reference['slots'])) {
      errors.push({ path, field: 'slots', message: 'required: an array of {weekday, start, min, max}' });
      return;
    }
    (reference['slots'] as Array<Record<string, unknown>>).forEach((slot, j) => {
      rows.push({
        where: { path: `${path}.slots[${j}]` },
        stationId: reference['station_id'],
        effectiveFrom: reference['effective_from'],
        timeZone: reference['time_zone'],
        slotMinutes: reference['slot_minutes'],
        weekday: slot?.['weekday'],
        slotStart: slot?.['start'],
        min: slot?.['min'],
        max: slot?.['max'],
      });
    });
  });
  return rows;
}

export type ReferenceChange = { stationId: string; effectiveFrom: string; version: string; action: 'add' | 'replace' | 'unchanged'; previousVersion?: string };

/** Merges a parsed version into a station's record (one version per effective-from); undefined if unchanged. */
export function mergeReferenceVersion(current: StationReferenceRecord | undefined, version: ParsedReferenceVersion): StationReferenceRecord | undefined {
  const { stationId, ...record } = version;
  const versions = current?.versions ?? [];
  const existing = versions.find((candidate) => candidate.effectiveFromMs === record.effectiveFromMs);
  if (existing?.version === record.version) return undefined;
  const next = [...versions.filter((candidate) => candidate.effectiveFromMs !== record.effectiveFromMs), record].sort((a, b) => a.effectiveFromMs - b.effectiveFromMs);
  return { stationId, versions: next };
}

export function planReferenceChanges(current: Map<string, StationReferenceRecord>, parsed: ParsedReferenceVersion[]): ReferenceChange[] {
  return parsed.map((version) => {
    const existing = current.get(version.stationId)?.versions.find((candidate) => candidate.effectiveFromMs === version.effectiveFromMs);
    return {
      stationId: version.stationId,
      effectiveFrom: new Date(version.effectiveFromMs).toISOString(),
      version: version.version,
      action: !existing ? 'add' : existing.version === version.version ? 'unchanged' : 'replace',
      ...(existing && existing.version !== version.version ? { previousVersion: existing.version } : {}),
    };
  });
}

/** The version of a station's reference effective at t (latest effectiveFrom <= t). */
export function versionAt(record: StationReferenceRecord | undefined, t: number): TrafficReferenceVersionRecord | undefined {
  if (!record) return undefined;
  let found: TrafficReferenceVersionRecord | undefined;
  for (const version of record.versions) if (version.effectiveFromMs <= t) found = version;
  return found;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
/** Local weekday (1 = Mon) and minute of day of instant t in zone. */
export function localWeekdayMinute(t: number, zone: string): { weekday: number; minute: number } {
  let formatter = formatters.get(zone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', { timeZone: zone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(zone, formatter);
  }
  let weekday = 0;
  let hour = 0;
  let minute = 0;
  for (const part of formatter.formatToParts(t)) {
    if (part.type === 'weekday') weekday = weekdayNames[part.value.toLowerCase()];
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return { weekday, minute: hour * 60 + minute };
}

/** Band of the slot starting at slotStartMs under a version; undefined if the reference has none for it. */
export function bandOf(version: TrafficReferenceVersionRecord, slotStartMs: number): TrafficBandRecord | undefined {
  const { weekday, minute } = localWeekdayMinute(slotStartMs, version.timeZone);
  return version.bands[`${weekday}/${Math.floor(minute / version.slotMinutes)}`];
}
