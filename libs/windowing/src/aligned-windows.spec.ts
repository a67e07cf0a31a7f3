import fc from 'fast-check';
import { alignedWindowStart, windowsOf } from './aligned-windows';
import type { WindowBounds } from './types';
import { WindowEngine } from './window-engine';

const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;
const utc = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString().replace(':00.000Z', 'Z');
const tumbling = (sizeMs: number, t: number, zone: string): [string, string] => {
  const [w] = windowsOf({ kind: 'tumbling', sizeMs }, t, zone);
  return [iso(w.startMs), iso(w.endMs)];
};

describe('aligned windows in UTC', () => {
  it('holds a record exactly at a start in that window, and one exactly at the end in the next', () => {
    expect(windowsOf({ kind: 'tumbling', sizeMs: 1000 }, 2000, 'UTC')).toEqual([{ startMs: 2000, endMs: 3000 }]);
    expect(windowsOf({ kind: 'tumbling', sizeMs: 1000 }, 2999, 'UTC')).toEqual([{ startMs: 2000, endMs: 3000 }]);
    expect(windowsOf({ kind: 'tumbling', sizeMs: 1000 }, 3000, 'UTC')).toEqual([{ startMs: 3000, endMs: 4000 }]);
    expect(windowsOf({ kind: 'tumbling', sizeMs: 1000 }, -1, 'UTC')).toEqual([{ startMs: -1000, endMs: 0 }]);
  });

  it('puts a record in every sliding window covering it, sorted by start', () => {
    const t = utc('2024-06-01T10:20:00Z');
    expect(windowsOf({ kind: 'sliding', sizeMs: hour, slideMs: 15 * minute }, t, 'UTC').map((w) => [iso(w.startMs), iso(w.endMs)])).toEqual([
      ['2024-06-01T09:30Z', '2024-06-01T10:30Z'],
      ['2024-06-01T09:45Z', '2024-06-01T10:45Z'],
      ['2024-06-01T10:00Z', '2024-06-01T11:00Z'],
      ['2024-06-01T10:15Z', '2024-06-01T11:15Z'],
    ]);
  });

  it('aligns sizes that do not divide a day to 1970-01-01 local midnight', () => {
    expect(alignedWindowStart(7 * minute + 5, 7 * minute, 'UTC')).toBe(7 * minute);
    expect(alignedWindowStart(utc('2024-06-01T00:03:00Z'), 7 * minute, 'UTC') % (7 * minute)).toBe(0);
  });

  it('rejects sessions, sizes that are not a multiple of the slide, and unknown zones', () => {
    expect(() => windowsOf({ kind: 'session', gapMs: 1000 }, 0, 'UTC')).toThrow('not aligned');
    expect(() => windowsOf({ kind: 'sliding', sizeMs: 1000, slideMs: 300 }, 0, 'UTC')).toThrow('multiple of window.slideMs');
    expect(() => windowsOf({ kind: 'tumbling', sizeMs: 1000 }, 0, 'Mars/Olympus_Mons')).toThrow('Unknown time zone "Mars/Olympus_Mons"');
    expect(() => windowsOf({ kind: 'tumbling', sizeMs: 0 }, 0, 'UTC')).toThrow('window.sizeMs');
    expect(() => windowsOf({ kind: 'tumbling', sizeMs: 1000 }, 0.5, 'UTC')).toThrow(RangeError);
  });
});

describe('aligned windows in zones with DST and odd offsets', () => {
  it('makes local days of 23 and 25 hours in New York', () => {
    expect(tumbling(day, utc('2024-03-10T12:00:00Z'), 'America/New_York')).toEqual(['2024-03-10T05:00Z', '2024-03-11T04:00Z']);
    expect(tumbling(day, utc('2024-11-03T12:00:00Z'), 'America/New_York')).toEqual(['2024-11-03T04:00Z', '2024-11-04T05:00Z']);
    // The repeated 01:00-02:00 belongs to the same day, both times.
    expect(tumbling(day, utc('2024-11-03T06:30:00Z'), 'America/New_York')).toEqual(['2024-11-03T04:00Z', '2024-11-04T05:00Z']);
    expect(tumbling(day, utc('2024-11-03T03:59:59Z'), 'America/New_York')).toEqual(['2024-11-02T04:00Z', '2024-11-03T04:00Z']);
  });

  it('makes local days of 23 and 25 hours in Paris, and multi-day windows from local midnights', () => {
    expect(tumbling(day, utc('2024-03-31T12:00:00Z'), 'Europe/Paris')).toEqual(['2024-03-30T23:00Z', '2024-03-31T22:00Z']);
    expect(tumbling(day, utc('2024-10-27T12:00:00Z'), 'Europe/Paris')).toEqual(['2024-10-26T22:00Z', '2024-10-27T23:00Z']);
    const [twoDays] = windowsOf({ kind: 'tumbling', sizeMs: 2 * day }, utc('2024-10-27T12:00:00Z'), 'Europe/Paris');
    expect(twoDays.endMs - twoDays.startMs).toBe(49 * hour);
  });

  it('gives each pass of New York fall-back hour its own hourly window', () => {
    expect(tumbling(hour, utc('2024-11-03T05:30:00Z'), 'America/New_York')).toEqual(['2024-11-03T05:00Z', '2024-11-03T06:00Z']); // 01:30 EDT
    expect(tumbling(hour, utc('2024-11-03T06:30:00Z'), 'America/New_York')).toEqual(['2024-11-03T06:00Z', '2024-11-03T07:00Z']); // 01:30 EST
  });

  it('skips the missing New York spring-forward hour', () => {
    expect(tumbling(hour, utc('2024-03-10T06:30:00Z'), 'America/New_York')).toEqual(['2024-03-10T06:00Z', '2024-03-10T07:00Z']); // 01:30 EST
    expect(tumbling(hour, utc('2024-03-10T07:00:00Z'), 'America/New_York')).toEqual(['2024-03-10T07:00Z', '2024-03-10T08:00Z']); // 03:00 EDT
  });

  it('cuts a sub-day window that an offset change runs through, each piece on its own side', () => {
    // 2-hour windows: 02:00-04:00 local loses its first hour in spring...
    expect(tumbling(2 * hour, utc('2024-03-10T06:59:00Z'), 'America/New_York')).toEqual(['2024-03-10T05:00Z', '2024-03-10T07:00Z']);
    expect(tumbling(2 * hour, utc('2024-03-10T07:30:00Z'), 'America/New_York')).toEqual(['2024-03-10T07:00Z', '2024-03-10T08:00Z']);
    expect(tumbling(2 * hour, utc('2024-03-10T08:00:00Z'), 'America/New_York')).toEqual(['2024-03-10T08:00Z', '2024-03-10T10:00Z']);
    // ...and in autumn 00:00-02:00 local happens once in EDT (2 h) and then its second hour again in EST.
    expect(tumbling(2 * hour, utc('2024-11-03T05:59:00Z'), 'America/New_York')).toEqual(['2024-11-03T04:00Z', '2024-11-03T06:00Z']);
    expect(tumbling(2 * hour, utc('2024-11-03T06:00:00Z'), 'America/New_York')).toEqual(['2024-11-03T06:00Z', '2024-11-03T07:00Z']);
    expect(tumbling(2 * hour, utc('2024-11-03T07:00:00Z'), 'America/New_York')).toEqual(['2024-11-03T07:00Z', '2024-11-03T09:00Z']);
  });

  it('aligns 30-minute windows at :15 and :45 UTC in Kathmandu (+05:45), days at 18:15 UTC', () => {
    expect(tumbling(30 * minute, utc('2024-03-10T12:00:00Z'), 'Asia/Kathmandu')).toEqual(['2024-03-10T11:45Z', '2024-03-10T12:15Z']);
    expect(tumbling(30 * minute, utc('2024-03-10T12:15:00Z'), 'Asia/Kathmandu')).toEqual(['2024-03-10T12:15Z', '2024-03-10T12:45Z']);
    expect(tumbling(hour, utc('2024-03-10T12:00:00Z'), 'Asia/Kathmandu')).toEqual(['2024-03-10T11:15Z', '2024-03-10T12:15Z']);
    expect(tumbling(day, utc('2024-03-10T12:00:00Z'), 'Asia/Kathmandu')).toEqual(['2024-03-09T18:15Z', '2024-03-10T18:15Z']);
  });

  it('follows Lord Howe half-hour DST changes: days of 23.5 and 24.5 hours, a half-hour window piece', () => {
    // DST starts 2024-10-06 02:00 +10:30 -> 02:30 +11:00 (15:30 UTC).
    expect(tumbling(day, utc('2024-10-06T00:00:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-10-05T13:30Z', '2024-10-06T13:00Z']);
    expect(tumbling(hour, utc('2024-10-05T15:15:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-10-05T14:30Z', '2024-10-05T15:30Z']);
    expect(tumbling(hour, utc('2024-10-05T15:45:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-10-05T15:30Z', '2024-10-05T16:00Z']);
    expect(tumbling(hour, utc('2024-10-05T16:10:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-10-05T16:00Z', '2024-10-05T17:00Z']);
    // DST ends 2024-04-07 02:00 +11:00 -> 01:30 +10:30 (15:00 UTC).
    expect(tumbling(day, utc('2024-04-07T00:00:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-04-06T13:00Z', '2024-04-07T13:30Z']);
    expect(tumbling(hour, utc('2024-04-06T14:45:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-04-06T14:00Z', '2024-04-06T15:00Z']);
    expect(tumbling(hour, utc('2024-04-06T15:10:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-04-06T15:00Z', '2024-04-06T15:30Z']);
    expect(tumbling(hour, utc('2024-04-06T15:40:00Z'), 'Australia/Lord_Howe')).toEqual(['2024-04-06T15:30Z', '2024-04-06T16:30Z']);
  });

  it('keeps sliding windows across a change: still sizeMs / slideMs windows per record, each holding it', () => {
    const spec = { kind: 'sliding', sizeMs: 2 * hour, slideMs: 30 * minute } as const;
    for (let t = utc('2024-11-03T03:00:00Z'); t < utc('2024-11-03T09:00:00Z'); t += 7 * minute) {
      const windows = windowsOf(spec, t, 'America/New_York');
      expect(windows).toHaveLength(4);
      for (const w of windows) {
        expect(w.startMs).toBeLessThanOrEqual(t);
        expect(w.endMs).toBeGreaterThan(t);
        expect(w.endMs - w.startMs).toBeLessThanOrEqual(2 * hour);
      }
    }
  });
});

/** Offset from formatted wall-clock fields: deliberately another technique than the engine's (which reads 'longOffset'). */
const formats = new Map<string, Intl.DateTimeFormat>();
function independentOffset(zone: string, t: number): number {
  let format = formats.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(zone, format);
  }
  const part = (parts: Intl.DateTimeFormatPart[], type: string) => Number(parts.find((p) => p.type === type)?.value);
  const parts = format.formatToParts(t);
  const local = Date.UTC(part(parts, 'year'), part(parts, 'month') - 1, part(parts, 'day'), part(parts, 'hour'), part(parts, 'minute'), part(parts, 'second'));
  return local - Math.floor(t / 1000) * 1000;
}
const localOf = (zone: string, t: number): number => t + independentOffset(zone, t);
const isChange = (zone: string, t: number): boolean => independentOffset(zone, t - 1) !== independentOffset(zone, t);
const mod = (a: number, b: number): number => ((a % b) + b) % b;

describe('tumbling windows partition time in every zone (property)', () => {
  const zones = ['America/New_York', 'Europe/Paris', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'America/Santiago', 'Asia/Tehran', 'UTC'];
  const changes = [
    '2024-03-10T07:00:00Z',
    '2024-11-03T06:00:00Z',
    '2024-03-31T01:00:00Z',
    '2024-10-27T01:00:00Z',
    '2024-10-05T15:30:00Z',
    '2024-04-06T15:00:00Z',
    '2024-04-07T03:00:00Z', // Santiago, at local midnight
    '2024-09-08T04:00:00Z',
    '2022-03-21T20:30:00Z', // Tehran's last DST
  ].map(utc);
  const sizes = [15 * minute, 30 * minute, 45 * minute, hour, 2 * hour, 3 * hour, 7 * minute, 13 * hour, day, 2 * day, 7 * day];

  it('every instant is in exactly one window, aligned to the local clock or to an offset change', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.constantFrom(...sizes),
        fc.constantFrom(...changes),
        fc.integer({ min: -3 * day, max: 3 * day }),
        (zone, sizeMs, change, delta) => {
          const t = change + delta;
          const spec = { kind: 'tumbling', sizeMs } as const;
          const [w]: WindowBounds[] = windowsOf(spec, t, zone);
          expect(w.startMs <= t && t < w.endMs).toBe(true);
          // Neighbours touch: the window after starts at the end, the one before ends at the start.
          expect(windowsOf(spec, w.endMs, zone)[0].startMs).toBe(w.endMs);
          expect(windowsOf(spec, w.startMs - 1, zone)[0].endMs).toBe(w.startMs);
          if (sizeMs % day === 0) {
            // Local midnight, or the first instant of a day whose midnight was skipped.
            expect(mod(localOf(zone, w.startMs), day) === 0 || isChange(zone, w.startMs)).toBe(true);
            expect(Math.abs(w.endMs - w.startMs - sizeMs)).toBeLessThanOrEqual((sizeMs / day) * hour);
          } else {
            expect(mod(localOf(zone, w.startMs), sizeMs) === 0 || isChange(zone, w.startMs)).toBe(true);
            expect(mod(localOf(zone, w.endMs - 1) + 1, sizeMs) === 0 || isChange(zone, w.endMs)).toBe(true);
            expect(w.endMs - w.startMs).toBeLessThanOrEqual(sizeMs);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('offset cache', () => {
  it('does not consult Intl on add() for hours already seen', () => {
    const engine = new WindowEngine({
      window: { kind: 'tumbling', sizeMs: 15 * minute, timeZone: 'Europe/Paris' },
      outOfOrdernessMs: hour,
      allowedLatenessMs: 0,
      idleTimeoutMs: hour,
    });
    const t0 = utc('2031-07-01T10:00:00Z'); // a year no other test touches
    engine.add({ key: 'warm-up', eventTimeMs: t0, value: 1 });
    engine.add({ key: 'warm-up', eventTimeMs: t0 + 50 * minute, value: 1 });
    // Count every Intl formatting call (format is an accessor on the prototype).
    const proto = Intl.DateTimeFormat.prototype;
    const descriptor = Object.getOwnPropertyDescriptor(proto, 'format') as PropertyDescriptor;
    const getFormat = descriptor.get as (this: Intl.DateTimeFormat) => Intl.DateTimeFormat['format'];
    let intlCalls = 0;
    Object.defineProperty(proto, 'format', {
      ...descriptor,
      get(this: Intl.DateTimeFormat) {
        intlCalls++;
        return getFormat.call(this);
      },
    });
    const formatToParts = jest.spyOn(proto, 'formatToParts');
    try {
      for (let i = 0; i < 10_000; i++) engine.add({ key: `plaza-${i % 100}`, eventTimeMs: t0 + ((i * 7919) % hour), value: i });
      expect(intlCalls).toBe(0);
      expect(formatToParts).not.toHaveBeenCalled();
      engine.add({ key: 'plaza-1', eventTimeMs: t0 + day, value: 1 }); // a new hour: the counter does see Intl
      expect(intlCalls).toBeGreaterThan(0);
    } finally {
      Object.defineProperty(proto, 'format', descriptor);
      formatToParts.mockRestore();
    }
  });
});
