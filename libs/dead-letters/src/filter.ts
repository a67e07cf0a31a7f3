import { deadLetterReasonCodes, deadLetterSources, knownReasonCodes, type DeadLetterSource } from './reason-codes';

/** Which dead letters an operator asks for. Every part is optional; all given parts must match. */
export interface DeadLetterFilter {
  sources?: readonly DeadLetterSource[];
  reasonCodes?: readonly string[];
  stationIds?: readonly string[];
  /** Dead-lettered at or after. */
  since?: Date;
  /** Dead-lettered before. */
  until?: Date;
  /** Dead letter ids (their TOLL_DLQ stream sequence). */
  ids?: readonly number[];
}

/** What the command line gives, as typed. */
export interface RawDeadLetterFilter {
  source?: string;
  reason?: string;
  station?: string;
  since?: string;
  until?: string;
  ids?: readonly string[];
}

/** A filter an operator typed that cannot be right; the message says what to type instead. */
export class DeadLetterFilterError extends Error {
  override name = 'DeadLetterFilterError';
}

export const maxFilterValues = 1_000;

const listOf = (value: string | undefined, what: string): string[] | undefined => {
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length === 0) throw new DeadLetterFilterError(`${what}: expected a comma-separated list, got "${value.slice(0, 80)}"`);
  if (items.length > maxFilterValues) throw new DeadLetterFilterError(`${what}: at most ${maxFilterValues} values`);
  return [...new Set(items)];
};

const instantOf = (value: string | undefined, what: string, nowMs: number): Date | undefined => {
  if (value === undefined) return undefined;
  const relative = /^(\d{1,6})(m|h|d)$/.exec(value.trim());
  if (relative) {
    const unitMs = { m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 'm' | 'h' | 'd'];
    return new Date(nowMs - Number(relative[1]) * unitMs);
  }
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime()) || !/(Z|[+-]\d{2}:?\d{2})$/i.test(value.trim())) {
    throw new DeadLetterFilterError(`${what}: expected an ISO 8601 instant with offset (2026-12-07T09:00:00Z) or an age (30m, 6h, 2d), got "${value.slice(0, 80)}"`);
  }
  return parsed;
};

/** Checks and converts what was typed; throws DeadLetterFilterError naming the bad part. */
export function parseDeadLetterFilter(raw: RawDeadLetterFilter, nowMs: number = Date.now()): DeadLetterFilter {
  const filter: DeadLetterFilter = {};
  const sources = listOf(raw.source, '--source');
  if (sources) {
    const unknown = sources.filter((source) => !(deadLetterSources as readonly string[]).includes(source));
    if (unknown.length > 0) throw new DeadLetterFilterError(`--source: unknown source ${unknown.map((s) => `"${s.slice(0, 64)}"`).join(', ')} (sources: ${deadLetterSources.join(', ')})`);
    filter.sources = sources as DeadLetterSource[];
  }
  const reasons = listOf(raw.reason, '--reason')?.map((code) => code.toUpperCase());
  if (reasons) {
    const unknown = reasons.filter((code) => !knownReasonCodes.has(code));
    if (unknown.length > 0) {
      throw new DeadLetterFilterError(`--reason: unknown reason code ${unknown.map((c) => `"${c.slice(0, 64)}"`).join(', ')} (codes: ${deadLetterReasonCodes.map((entry) => entry.code).join(', ')})`);
    }
    filter.reasonCodes = reasons;
  }
  const stations = listOf(raw.station, '--station');
  if (stations) {
    const bad = stations.find((station) => !/^[A-Za-z0-9._:-]{1,64}$/.test(station));
    if (bad !== undefined) throw new DeadLetterFilterError(`--station: "${bad.slice(0, 64)}" is not a station id (letters, digits and . _ : -, 64 at most)`);
    filter.stationIds = stations;
  }
  filter.since = instantOf(raw.since, '--since', nowMs);
  filter.until = instantOf(raw.until, '--until', nowMs);
  if (filter.since && filter.until && filter.since >= filter.until) {
    throw new DeadLetterFilterError(`--since (${filter.since.toISOString()}) must be before --until (${filter.until.toISOString()})`);
  }
  if (raw.ids && raw.ids.length > 0) {
    if (raw.ids.length > maxFilterValues) throw new DeadLetterFilterError(`at most ${maxFilterValues} dead letter ids at once; use a filter for more`);
    filter.ids = [...new Set(raw.ids.map(parseDeadLetterId))].sort((a, b) => a - b);
  }
  for (const key of Object.keys(filter) as Array<keyof DeadLetterFilter>) if (filter[key] === undefined) delete filter[key];
  return filter;
}

/** A dead letter id as typed (its TOLL_DLQ stream sequence). */
export function parseDeadLetterId(text: string): number {
  const trimmed = text.trim();
  if (!/^\d{1,15}$/.test(trimmed) || Number(trimmed) < 1) {
    throw new DeadLetterFilterError(`"${text.slice(0, 40)}" is not a dead letter id (a positive number, as \`tollstream dlq list\` shows)`);
  }
  return Number(trimmed);
}

/** True when the filter narrows anything (a re-drive of everything must be asked for explicitly). */
export function filterIsEmpty(filter: DeadLetterFilter): boolean {
  return Object.values(filter).every((value) => value === undefined);
}

/** The subject to read: one source's subject when the filter names exactly one source. */
export function subjectOfFilter(filter: DeadLetterFilter): string {
  return filter.sources?.length === 1 ? `tolls.dlq.${filter.sources[0]}` : 'tolls.dlq.>';
}

/** What a stored dead letter is matched on. */
export interface DeadLetterFacts {
  id: number;
  source: string;
  reasonCode: string;
  stationId: string;
  deadLetteredAt?: Date;
}

export function matchesFilter(letter: DeadLetterFacts, filter: DeadLetterFilter): boolean {
  if (filter.ids && !filter.ids.includes(letter.id)) return false;
  if (filter.sources && !(filter.sources as readonly string[]).includes(letter.source)) return false;
  if (filter.reasonCodes && !filter.reasonCodes.includes(letter.reasonCode)) return false;
  if (filter.stationIds && !filter.stationIds.includes(letter.stationId)) return false;
  const at = letter.deadLetteredAt?.getTime();
  if (filter.since && (at === undefined || at < filter.since.getTime())) return false;
  if (filter.until && (at === undefined || at >= filter.until.getTime())) return false;
  return true;
}
