import type { WindowBounds, WindowSpec } from './types';
import { dayMs, zoneClock, type ZoneClock } from './zone-clock';
import { checkDuration, checkInstant } from './validation';

/**
 * How tumbling and sliding windows lie in a zone (a tumbling window is a sliding one with slide = size).
 *
 * Boundaries are aligned to the zone's wall clock, in one of two ways:
 * - size a whole number of days ("calendar"): a boundary at local time x (a multiple of the slide:
 *   a local midnight for daily slides) is the first instant the clock reads x or later, so a window
 *   spans whole local days and a DST day lasts 23 or 25 h (a local time skipped in spring maps to
 *   the change, one repeated in autumn to its first occurrence);
 * - otherwise ("clock"): within each stretch of constant UTC offset, windows are the local grid
 *   [x, x + size) for x a multiple of the slide (counted from 1970-01-01 00:00 local, so sizes that
 *   divide a day start at local midnight); a window that an offset change cuts through is split there,
 *   each piece belonging to its own side. Windows never last longer than size; across a change they
 *   are shorter (e.g. on a fall-back night, 01:00-02:00 local happens twice and so do its windows).
 * Either way, the tumbling windows of a zone partition the timeline: every instant is in exactly one.
 */
export interface AlignedLayout {
  readonly sizeMs: number;
  readonly slideMs: number;
  /** Windows per record: sizeMs / slideMs. */
  readonly windowsPerRecord: number;
  readonly calendar: boolean;
}

/** Largest sizeMs / slideMs accepted (each record updates that many windows). */
export const maxWindowsPerRecord = 1000;

export function alignedLayoutOf(spec: WindowSpec): AlignedLayout {
  if (spec.kind === 'session') throw new Error('Session windows are not aligned to a clock');
  checkDuration('window.sizeMs', spec.sizeMs, false);
  const slideMs = spec.kind === 'sliding' ? spec.slideMs : spec.sizeMs;
  if (spec.kind === 'sliding') {
    checkDuration('window.slideMs', slideMs, false);
    if (spec.sizeMs % slideMs !== 0) {
      throw new Error(`window.sizeMs (${spec.sizeMs}) must be a multiple of window.slideMs (${slideMs})`);
    }
  }
  const windowsPerRecord = spec.sizeMs / slideMs;
  if (windowsPerRecord > maxWindowsPerRecord) {
    throw new Error(`window.sizeMs / window.slideMs must be at most ${maxWindowsPerRecord} (got ${windowsPerRecord})`);
  }
  return { sizeMs: spec.sizeMs, slideMs, windowsPerRecord, calendar: spec.sizeMs % dayMs === 0 };
}

/**
 * The windows of one stretch of time, [from, to), in which every instant belongs to the same windows:
 * what the engine caches per zone so that add() mostly does two comparisons instead of offset math.
 */
export class Pane {
  from = Number.POSITIVE_INFINITY;
  to = Number.NEGATIVE_INFINITY;
  count = 0;
  /** Windows sorted by (start, end) ascending. */
  readonly starts: Float64Array;
  readonly ends: Float64Array;

  constructor(capacity: number) {
    this.starts = new Float64Array(capacity);
    this.ends = new Float64Array(capacity);
  }
}

/** Largest multiple of `step` that is <= value (exact for all safe integers, unlike Math.floor of a quotient). */
function alignDown(value: number, step: number): number {
  let rest = value % step;
  if (rest < 0) rest += step;
  return value - rest;
}

/** Fills `pane` with the pane holding instant t. */
export function computePane(clock: ZoneClock, layout: AlignedLayout, t: number, pane: Pane): void {
  if (layout.calendar) calendarPane(clock, layout, t, pane);
  else clockPane(clock, layout, t, pane);
}

function clockPane(clock: ZoneClock, layout: AlignedLayout, t: number, pane: Pane): void {
  const { sizeMs, slideMs, windowsPerRecord } = layout;
  const offset = clock.offsetAt(t);
  const paneLocal = alignDown(t + offset, slideMs);
  const firstLocal = paneLocal - (windowsPerRecord - 1) * slideMs;
  // The constant-offset stretch around t, looked for only as far as the windows reach.
  const stretchStart = clock.lastChangeIn(firstLocal - offset, t);
  const stretchEnd = clock.firstChangeIn(t, paneLocal + sizeMs - offset);
  pane.count = 0;
  for (let local = firstLocal; local <= paneLocal; local += slideMs) {
    push(pane, Math.max(local - offset, stretchStart), Math.min(local + sizeMs - offset, stretchEnd));
  }
  pane.from = Math.max(paneLocal - offset, stretchStart);
  pane.to = Math.min(paneLocal + slideMs - offset, stretchEnd);
}

function calendarPane(clock: ZoneClock, layout: AlignedLayout, t: number, pane: Pane): void {
  const { sizeMs, slideMs, windowsPerRecord } = layout;
  let paneLocal = alignDown(t + clock.offsetAt(t), slideMs);
  // The local day of t's offset can differ from the day whose boundaries enclose t when a backward
  // change crosses midnight: settle on the enclosing boundaries.
  while (clock.firstPassage(paneLocal) > t) paneLocal -= slideMs;
  while (clock.firstPassage(paneLocal + slideMs) <= t) paneLocal += slideMs;
  pane.count = 0;
  for (let local = paneLocal - (windowsPerRecord - 1) * slideMs; local <= paneLocal; local += slideMs) {
    push(pane, clock.firstPassage(local), clock.firstPassage(local + sizeMs));
  }
  pane.from = clock.firstPassage(paneLocal);
  pane.to = clock.firstPassage(paneLocal + slideMs);
}

function push(pane: Pane, start: number, end: number): void {
  const n = pane.count;
  // Clipping can make neighbours coincide; a window is listed once.
  if (n > 0 && pane.starts[n - 1] === start && pane.ends[n - 1] === end) return;
  pane.starts[n] = start;
  pane.ends[n] = end;
  pane.count = n + 1;
}

/**
 * The tumbling or sliding windows holding eventTimeMs in the zone, sorted by start (a pure reference
 * for tests and brute-force checks: it allocates, the engine does not).
 */
export function windowsOf(spec: WindowSpec, eventTimeMs: number, timeZone: string): WindowBounds[] {
  const layout = alignedLayoutOf(spec);
  checkInstant('eventTimeMs', eventTimeMs);
  const pane = new Pane(layout.windowsPerRecord);
  computePane(zoneClock(timeZone), layout, eventTimeMs, pane);
  const windows: WindowBounds[] = [];
  for (let i = 0; i < pane.count; i++) windows.push({ startMs: pane.starts[i], endMs: pane.ends[i] });
  return windows;
}

/** Start of the tumbling window of sizeMs holding eventTimeMs, aligned in the zone (see AlignedLayout). */
export function alignedWindowStart(eventTimeMs: number, sizeMs: number, timeZone: string): number {
  return windowsOf({ kind: 'tumbling', sizeMs }, eventTimeMs, timeZone)[0].startMs;
}
