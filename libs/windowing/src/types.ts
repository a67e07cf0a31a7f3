export type WindowSpec =
  /** Aligned windows [start, start + size) in the zone's wall-clock time. */
  | { kind: 'tumbling'; sizeMs: number; timeZone?: string }
  /** Hopping windows: a record is in every window covering it (sizeMs / slideMs of them). */
  | { kind: 'sliding'; sizeMs: number; slideMs: number; timeZone?: string }
  /** Per key, [first event, last event + gap); touching sessions merge. */
  | { kind: 'session'; gapMs: number };

export interface WindowEngineOptions {
  window: WindowSpec;
  /** Time zone per key for aligned windows (e.g. a station's own zone); falls back to window.timeZone, then 'UTC'. Must be a function of the key only. */
  timeZoneOfKey?: (key: string) => string;
  /** Bounded out-of-orderness: watermark = max event time seen - this. */
  outOfOrdernessMs: number;
  /** How long after a window's end (in watermark time) a late record still amends it. */
  allowedLatenessMs: number;
  /** When no record arrived for this long in log time, the watermark follows log time (see advanceLogTime). */
  idleTimeoutMs: number;
  /** Number of sub-key counters per window (e.g. 7 vehicle classes, sub-key 0..6); 0 or absent = none. */
  subKeyCount?: number;
}

export interface WindowInput {
  key: string;
  eventTimeMs: number;
  value: number;
  subKey?: number;
}

export interface WindowResult {
  key: string;
  startMs: number;
  endMs: number;
  /** IANA zone the window was aligned in ('UTC' for session windows). */
  timeZone: string;
  count: number;
  sum: number;
  min: number;
  max: number;
  /** Newest event time among the window's records. */
  maxEventTimeMs: number;
  /** Present when subKeyCount > 0: counts per sub-key. */
  countsBySubKey?: number[];
  /** 1 for the first emission; +1 per amendment. Always the full corrected value, never a delta. */
  revision: number;
  /** Session windows only: this window no longer exists (merged/extended into another); readers drop it. */
  retracted?: boolean;
}

export type AddOutcome = 'applied' | 'late';

export interface WindowBounds {
  startMs: number;
  endMs: number;
}
