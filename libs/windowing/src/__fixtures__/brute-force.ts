import { windowsOf } from '../aligned-windows';
import type { WindowEngineOptions, WindowInput, WindowResult } from '../types';
import type { WindowEngine } from '../window-engine';

/** One call on an engine, as the property tests drive it. */
export type EngineOp =
  | { op: 'add'; input: WindowInput }
  | { op: 'log'; logTimeMs: number; carried: boolean }
  | { op: 'take' };

/** Window identity as readers see it. */
export const identityOf = (r: { key: string; startMs: number; endMs: number }): string => `${r.key}|${r.startMs}|${r.endMs}`;

export interface FinalWindow {
  key: string;
  startMs: number;
  endMs: number;
  timeZone: string;
  count: number;
  sum: number;
  min: number;
  max: number;
  maxEventTimeMs: number;
  countsBySubKey?: number[];
}

export interface BruteForceOutcome {
  /** Per add op, in order: whether the record was applied. */
  applied: boolean[];
  /** Watermark after each op. */
  watermarks: number[];
  lateCount: number;
  /** Every window of the applied records, sorted by identity. */
  windows: FinalWindow[];
  /** Per takeResults op: the windows of the records applied so far that the watermark had closed. */
  closedAtTake: Map<number, FinalWindow[]>;
}

const zoneOf = (options: WindowEngineOptions, key: string): string =>
  options.timeZoneOfKey?.(key) ?? (options.window.kind === 'session' ? 'UTC' : (options.window.timeZone ?? 'UTC'));

/**
 * Batch reference: simulates the watermark on its own (max event time - out-of-orderness, idle rule)
 * to decide which records are late, then computes every window from scratch over the applied ones.
 */
export function bruteForce(options: WindowEngineOptions, ops: readonly EngineOp[]): BruteForceOutcome {
  const lateness = options.allowedLatenessMs;
  let watermark = Number.MIN_SAFE_INTEGER;
  let maxEvent = Number.MIN_SAFE_INTEGER;
  let lastActivity: number | undefined;
  const applied: boolean[] = [];
  const watermarks: number[] = [];
  // Aligned: each applied record with the windows it went into. Sessions: applied records per key.
  const memberships: Membership[] = [];
  const sessionRecords = new Map<string, Array<{ input: WindowInput; op: number }>>();
  /** Memberships recorded before each op. */
  const appliedBefore: number[] = [];

  for (const [i, op] of ops.entries()) {
    appliedBefore.push(memberships.length);
    if (op.op === 'add') {
      const { input } = op;
      if (options.window.kind === 'session') {
        const ok = input.eventTimeMs + lateness > watermark;
        applied.push(ok);
        if (ok) {
          const records = sessionRecords.get(input.key) ?? [];
          records.push({ input, op: i });
          sessionRecords.set(input.key, records);
        }
      } else {
        const zone = zoneOf(options, input.key);
        const live = windowsOf(options.window, input.eventTimeMs, zone).filter((w) => w.endMs + lateness > watermark);
        applied.push(live.length > 0);
        if (live.length > 0) memberships.push({ input, zone, windows: live });
      }
      maxEvent = Math.max(maxEvent, input.eventTimeMs);
      watermark = Math.max(watermark, maxEvent - options.outOfOrdernessMs);
    } else if (op.op === 'log') {
      if (lastActivity === undefined || op.carried) lastActivity = op.logTimeMs;
      else if (op.logTimeMs - lastActivity >= options.idleTimeoutMs) watermark = Math.max(watermark, op.logTimeMs - options.idleTimeoutMs);
    }
    watermarks.push(watermark);
  }

  const takes = new Map<number, FinalWindow[]>();
  ops.forEach((op, i) => {
    if (op.op === 'take') takes.set(i, windowsFrom(options, memberships.slice(0, appliedBefore[i]), sessionRecords, i).filter((w) => w.endMs <= watermarks[i]));
  });
  const windows = windowsFrom(options, memberships, sessionRecords, ops.length);
  return { applied, watermarks, lateCount: applied.filter((a) => !a).length, windows, closedAtTake: takes };
}

type Membership = { input: WindowInput; zone: string; windows: Array<{ startMs: number; endMs: number }> };

/** The windows of the applied records (for sessions, of those applied before op `beforeOp`), sorted by identity. */
function windowsFrom(
  options: WindowEngineOptions,
  memberships: readonly Membership[],
  sessionRecords: ReadonlyMap<string, Array<{ input: WindowInput; op: number }>>,
  beforeOp: number,
): FinalWindow[] {
  const subKeys = options.subKeyCount ?? 0;
  const windows = new Map<string, FinalWindow>();
  const addTo = (key: string, startMs: number, endMs: number, timeZone: string, records: WindowInput[]): void => {
    const id = identityOf({ key, startMs, endMs });
    const window: FinalWindow = windows.get(id) ?? {
      key,
      startMs,
      endMs,
      timeZone,
      count: 0,
      sum: 0,
      min: Number.POSITIVE_INFINITY,
      max: Number.NEGATIVE_INFINITY,
      maxEventTimeMs: Number.NEGATIVE_INFINITY,
      ...(subKeys > 0 ? { countsBySubKey: new Array<number>(subKeys).fill(0) } : {}),
    };
    for (const r of records) {
      window.count++;
      window.sum += r.value;
      window.min = Math.min(window.min, r.value);
      window.max = Math.max(window.max, r.value);
      window.maxEventTimeMs = Math.max(window.maxEventTimeMs, r.eventTimeMs);
      if (r.subKey !== undefined && window.countsBySubKey) window.countsBySubKey[r.subKey]++;
    }
    windows.set(id, window);
  };

  if (options.window.kind === 'session') {
    const gap = options.window.gapMs;
    for (const [key, records] of sessionRecords) {
      const sorted = records.filter((r) => r.op < beforeOp).map((r) => r.input).sort((a, b) => a.eventTimeMs - b.eventTimeMs);
      let members: WindowInput[] = [];
      let start = 0;
      let end = Number.NEGATIVE_INFINITY;
      for (const r of sorted) {
        if (members.length > 0 && r.eventTimeMs > end) {
          addTo(key, start, end, 'UTC', members);
          members = [];
        }
        if (members.length === 0) start = r.eventTimeMs;
        members.push(r);
        end = Math.max(members.length === 1 ? Number.NEGATIVE_INFINITY : end, r.eventTimeMs + gap);
      }
      if (members.length > 0) addTo(key, start, end, 'UTC', members);
    }
  } else {
    for (const { input, zone, windows: live } of memberships) {
      for (const w of live) addTo(input.key, w.startMs, w.endMs, zone, [input]);
    }
  }
  return [...windows.values()].sort((a, b) => (identityOf(a) < identityOf(b) ? -1 : 1));
}


export interface EngineRun {
  outcomes: Array<'applied' | 'late'>;
  /** Every result, in order, with the watermark at the takeResults call that returned it. */
  results: Array<{ result: WindowResult; watermark: number }>;
  watermarks: number[];
  /** Number of results after each op. */
  resultCounts: number[];
}

/** Drives an engine through ops (from index `from`), collecting what it says. */
export function drive(engine: WindowEngine, ops: readonly EngineOp[], from = 0, to = ops.length, run?: EngineRun): EngineRun {
  const out = run ?? { outcomes: [], results: [], watermarks: [], resultCounts: [] };
  for (let i = from; i < to; i++) {
    const op = ops[i];
    if (op.op === 'add') out.outcomes.push(engine.add(op.input));
    else if (op.op === 'log') engine.advanceLogTime(op.logTimeMs, op.carried);
    else for (const result of engine.takeResults()) out.results.push({ result, watermark: engine.watermarkMs });
    out.watermarks.push(engine.watermarkMs);
    out.resultCounts.push(out.results.length);
  }
  return out;
}

/** Latest emission per window identity, dropping windows whose latest emission retracts them. */
export function finalState(results: ReadonlyArray<{ result: WindowResult }>): FinalWindow[] {
  const latest = new Map<string, WindowResult>();
  for (const { result } of results) latest.set(identityOf(result), result);
  return [...latest.values()]
    .filter((r) => r.retracted !== true)
    .map(({ revision: _revision, retracted: _retracted, ...window }) => window)
    .sort((a, b) => (identityOf(a) < identityOf(b) ? -1 : 1));
}
