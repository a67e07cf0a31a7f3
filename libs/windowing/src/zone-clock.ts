export const hourMs = 3_600_000;
export const dayMs = 86_400_000;

/** Event and log times are limited to this magnitude so that Date/Intl can resolve offsets a day either side. */
export const maxInstantMs = 8_600_000_000_000_000;
const dateLimitMs = 8_640_000_000_000_000;
/** Larger than any UTC offset a zone can have (ECMAScript caps them below 24 h). */
const offsetReachMs = 25 * hourMs;
/** Hours of offsets kept per zone before the cache starts over (about 5 years of event time). */
const maxCachedHours = 45_000;

/**
 * Offsets of one hour of UTC time in a zone. An hour holds at most one offset change: IANA zones
 * change offset at most a few times a year, so this holds for every real zone.
 */
interface ZoneHour {
  /** Offset (local - UTC, ms) from the hour's start until the change. */
  readonly before: number;
  /** First instant of the new offset, or +Infinity when the offset is constant throughout the hour. */
  readonly changeAt: number;
  readonly after: number;
}

const offsetPattern = /GMT(?:([+-])(\d{2}):(\d{2})(?::(\d{2}))?)?$/;

/**
 * UTC offsets of an IANA zone, with the instants at which they change, resolved with Intl and cached
 * per UTC hour: Intl costs microseconds per call, so callers on a hot path cache what they derive
 * from these (see AlignedWindows), and nothing here is asked twice for the same hour.
 */
export class ZoneClock {
  private readonly format: Intl.DateTimeFormat | undefined;
  private readonly hours = new Map<number, ZoneHour>();
  /** firstPassage results (calendar windows ask for the same boundaries over and over). */
  private readonly passages = new Map<number, number>();

  constructor(readonly name: string) {
    if (name === 'UTC') return;
    try {
      this.format = new Intl.DateTimeFormat('en-US', { timeZone: name, timeZoneName: 'longOffset' });
    } catch {
      throw new Error(`Unknown time zone "${name}": expected an IANA zone name such as "Europe/Paris"`);
    }
  }

  /** Offset (local wall-clock time minus UTC, in ms) in force at the instant t. */
  offsetAt(t: number): number {
    if (this.format === undefined) return 0;
    const hour = this.hour(Math.floor(t / hourMs));
    return t < hour.changeAt ? hour.before : hour.after;
  }

  /** Latest offset change in (after, atOrBefore], or -Infinity when there is none. */
  lastChangeIn(after: number, atOrBefore: number): number {
    if (this.format === undefined) return Number.NEGATIVE_INFINITY;
    for (let h = Math.floor(atOrBefore / hourMs), first = Math.floor(after / hourMs); h >= first; h--) {
      const at = this.hour(h).changeAt;
      if (at > after && at <= atOrBefore) return at;
    }
    return Number.NEGATIVE_INFINITY;
  }

  /** Earliest offset change in (after, before), or +Infinity when there is none. */
  firstChangeIn(after: number, before: number): number {
    if (this.format === undefined) return Number.POSITIVE_INFINITY;
    for (let h = Math.floor(after / hourMs), last = Math.floor(before / hourMs); h <= last; h++) {
      const at = this.hour(h).changeAt;
      if (at > after && at < before) return at;
    }
    return Number.POSITIVE_INFINITY;
  }

  /**
   * First instant at which the zone's wall clock reads `local` or later. A local time skipped by a
   * forward change maps to the change itself; one repeated by a backward change to its first
   * occurrence. Monotone in `local`, so boundaries made with it never cross.
   */
  firstPassage(local: number): number {
    if (this.format === undefined) return local;
    let passage = this.passages.get(local);
    if (passage === undefined) {
      if (this.passages.size >= maxCachedHours) this.passages.clear();
      passage = this.findFirstPassage(local);
      this.passages.set(local, passage);
    }
    return passage;
  }

  private findFirstPassage(local: number): number {
    // Walk the constant-offset segments that can hold the passage (offsets are below a day either way).
    const last = Math.floor((local + offsetReachMs) / hourMs);
    let h = Math.floor((local - offsetReachMs) / hourMs);
    let segmentStart = h * hourMs;
    let offset = this.hour(h).before;
    for (; h <= last; h++) {
      const hour = this.hour(h);
      if (hour.changeAt !== Number.POSITIVE_INFINITY) {
        const candidate = Math.max(segmentStart, local - offset);
        if (candidate < hour.changeAt) return candidate;
        segmentStart = hour.changeAt;
        offset = hour.after;
      }
    }
    return Math.max(segmentStart, local - offset);
  }

  private hour(h: number): ZoneHour {
    const cached = this.hours.get(h);
    if (cached !== undefined) return cached;
    if (this.hours.size >= maxCachedHours) this.hours.clear();
    const start = h * hourMs;
    const before = this.intlOffset(start);
    const after = this.intlOffset(start + hourMs);
    let changeAt = Number.POSITIVE_INFINITY;
    if (before !== after) {
      // Offsets change on whole seconds: bisect the hour to the second.
      let low = start;
      let high = start + hourMs;
      while (high - low > 1000) {
        const mid = low + Math.floor((high - low) / 2000) * 1000;
        if (this.intlOffset(mid) === before) low = mid;
        else high = mid;
      }
      changeAt = high;
    }
    const hour: ZoneHour = { before, changeAt, after };
    this.hours.set(h, hour);
    return hour;
  }

  private intlOffset(t: number): number {
    const clamped = Math.min(dateLimitMs, Math.max(-dateLimitMs, t));
    const text = (this.format as Intl.DateTimeFormat).format(clamped);
    const match = offsetPattern.exec(text);
    if (match === null) throw new Error(`Cannot read the UTC offset of time zone "${this.name}" from "${text}"`);
    if (match[1] === undefined) return 0;
    const magnitude = (Number(match[2]) * 3600 + Number(match[3]) * 60 + Number(match[4] ?? 0)) * 1000;
    return match[1] === '-' ? -magnitude : magnitude;
  }
}

const clocks = new Map<string, ZoneClock>();

/**
 * Whether `name` is an IANA time zone this runtime knows. A valid zone is remembered with its shared
 * clock, so checking the same zones again (a reference file parsed at every refresh) costs a lookup.
 */
export function isValidTimeZone(name: string): boolean {
  if (name.length === 0) return false;
  try {
    zoneClock(name);
    return true;
  } catch {
    return false;
  }
}

/** The shared clock of a zone (offsets are facts of the zone, so all engines share the cache). */
export function zoneClock(name: string): ZoneClock {
  let clock = clocks.get(name);
  if (clock === undefined) {
    clock = new ZoneClock(name);
    clocks.set(name, clock);
  }
  return clock;
}
