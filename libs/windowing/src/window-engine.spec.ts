import type { WindowEngineOptions, WindowResult } from './types';
import { WindowEngine } from './window-engine';

const hour = 3_600_000;

const engineWith = (overrides: Partial<WindowEngineOptions> = {}): WindowEngine =>
  new WindowEngine({
    window: { kind: 'tumbling', sizeMs: 1000 },
    outOfOrdernessMs: 0,
    allowedLatenessMs: 0,
    idleTimeoutMs: 10_000,
    ...overrides,
  });

/** The fields a test cares about. */
const brief = (r: WindowResult) => ({
  key: r.key,
  startMs: r.startMs,
  endMs: r.endMs,
  count: r.count,
  sum: r.sum,
  revision: r.revision,
  ...(r.retracted ? { retracted: true } : {}),
});

describe('WindowEngine: tumbling windows', () => {
  it('emits a window once, with revision 1 and all aggregates, when the watermark reaches its end', () => {
    const engine = engineWith({ subKeyCount: 3 });
    expect(engine.add({ key: 'plaza-1', eventTimeMs: 1000, value: 5, subKey: 0 })).toBe('applied'); // exactly at the start
    engine.add({ key: 'plaza-1', eventTimeMs: 1999, value: -2, subKey: 2 }); // the last instant
    engine.add({ key: 'plaza-1', eventTimeMs: 1500, value: 7, subKey: 2 });
    engine.add({ key: 'plaza-1', eventTimeMs: 1500, value: 1 }); // equal timestamps; no sub-key
    expect(engine.takeResults()).toEqual([]); // watermark 1999 < end 2000: no early firing
    engine.add({ key: 'plaza-1', eventTimeMs: 2000, value: 100, subKey: 1 }); // exactly at the end: the next window
    expect(engine.watermarkMs).toBe(2000);
    expect(engine.takeResults()).toEqual([
      {
        key: 'plaza-1',
        startMs: 1000,
        endMs: 2000,
        timeZone: 'UTC',
        count: 4,
        sum: 11,
        min: -2,
        max: 7,
        maxEventTimeMs: 1999,
        countsBySubKey: [1, 0, 2],
        revision: 1,
      },
    ]);
    expect(engine.takeResults()).toEqual([]);
    expect(engine.openWindowCount).toBe(1);
  });

  it('keeps the watermark at max event time minus out-of-orderness, never lowering it', () => {
    const engine = engineWith({ outOfOrdernessMs: 300 });
    expect(engine.watermarkMs).toBe(Number.MIN_SAFE_INTEGER);
    engine.add({ key: 'a', eventTimeMs: 5000, value: 1 });
    expect(engine.watermarkMs).toBe(4700);
    engine.add({ key: 'a', eventTimeMs: 4800, value: 1 }); // out of order, within the bound
    expect(engine.watermarkMs).toBe(4700);
    engine.add({ key: 'a', eventTimeMs: 5100, value: 1 });
    expect(engine.watermarkMs).toBe(4800);
    expect(engine.takeResults()).toEqual([]); // [4000, 5000) is still open
    engine.add({ key: 'a', eventTimeMs: 4999, value: 1 }); // still applied to the open window
    engine.add({ key: 'b', eventTimeMs: 5300, value: 1 });
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 4000, endMs: 5000, count: 2, sum: 2, revision: 1 }]);
  });

  it('amends a closed window within allowed lateness: revision 2 with the full value, once for several late records', () => {
    const engine = engineWith({ allowedLatenessMs: 1000 });
    engine.add({ key: 'a', eventTimeMs: 100, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1200, value: 10 });
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 0, endMs: 1000, count: 1, sum: 1, revision: 1 }]);
    expect(engine.add({ key: 'a', eventTimeMs: 200, value: 2 })).toBe('applied');
    expect(engine.add({ key: 'a', eventTimeMs: 300, value: 3 })).toBe('applied');
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 0, endMs: 1000, count: 3, sum: 6, revision: 2 }]);
    engine.add({ key: 'a', eventTimeMs: 999, value: 4 });
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 0, endMs: 1000, count: 4, sum: 10, revision: 3 }]);
  });

  it('emits a window created by a late record with revision 1', () => {
    const engine = engineWith({ allowedLatenessMs: 1000 });
    engine.add({ key: 'a', eventTimeMs: 1500, value: 1 });
    engine.takeResults();
    expect(engine.add({ key: 'b', eventTimeMs: 700, value: 9 })).toBe('applied'); // [0, 1000) closed, not expired
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'b', startMs: 0, endMs: 1000, count: 1, sum: 9, revision: 1 }]);
  });

  it('rejects records beyond allowed lateness as late, counts them, and applies nothing', () => {
    const engine = engineWith({ allowedLatenessMs: 500 });
    engine.add({ key: 'a', eventTimeMs: 100, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1500, value: 1 }); // watermark 1500 = end 1000 + lateness 500
    expect(engine.add({ key: 'a', eventTimeMs: 999, value: 50 })).toBe('late');
    expect(engine.add({ key: 'new-key', eventTimeMs: 10, value: 50 })).toBe('late');
    expect(engine.lateRecordCount).toBe(2);
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 0, endMs: 1000, count: 1, sum: 1, revision: 1 }]);
    expect(engine.openWindowCount).toBe(1); // [0, 1000) purged; new-key never created
  });

  it('purges a window once its end + allowed lateness is reached, after emitting a pending amendment', () => {
    const engine = engineWith({ allowedLatenessMs: 500 });
    engine.add({ key: 'a', eventTimeMs: 100, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 }); // watermark exactly at the end
    expect(engine.takeResults().map((r) => r.revision)).toEqual([1]);
    engine.add({ key: 'a', eventTimeMs: 200, value: 1 }); // amends
    engine.add({ key: 'a', eventTimeMs: 1600, value: 1 }); // and expires it
    expect(engine.openWindowCount).toBe(2);
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 0, endMs: 1000, count: 2, sum: 2, revision: 2 }]);
    expect(engine.openWindowCount).toBe(1);
    engine.add({ key: 'a', eventTimeMs: 2500, value: 1 });
    expect(engine.takeResults().map((r) => [r.startMs, r.revision])).toEqual([[1000, 1]]); // once, though purged in the same call
    expect(engine.takeResults()).toEqual([]);
    expect(engine.openWindowCount).toBe(1);
  });

  it('orders results: amendments first (in the order they changed), then newly closed windows by end, then creation', () => {
    const engine = engineWith({ allowedLatenessMs: 5000 });
    engine.add({ key: 'x', eventTimeMs: 100, value: 1 });
    engine.add({ key: 'y', eventTimeMs: 200, value: 1 });
    engine.add({ key: 'y', eventTimeMs: 1100, value: 1 });
    engine.takeResults();
    engine.add({ key: 'z', eventTimeMs: 1900, value: 1 });
    engine.add({ key: 'y', eventTimeMs: 300, value: 1 }); // amendment of y [0, 1000)
    engine.add({ key: 'x', eventTimeMs: 400, value: 1 }); // then of x
    engine.add({ key: 'x', eventTimeMs: 2500, value: 1 });
    engine.add({ key: 'w', eventTimeMs: 3100, value: 1 });
    expect(engine.takeResults().map((r) => `${r.key}@${r.startMs}#${r.revision}`)).toEqual(['y@0#2', 'x@0#2', 'y@1000#1', 'z@1000#1', 'x@2000#1']);
  });

  it('lets the watermark follow log time once the input is idle (heartbeats only)', () => {
    const engine = engineWith({ idleTimeoutMs: 5000 });
    engine.add({ key: 'a', eventTimeMs: 100, value: 1 });
    engine.advanceLogTime(10_000, true);
    expect(engine.watermarkMs).toBe(100);
    engine.advanceLogTime(14_999, false);
    expect(engine.watermarkMs).toBe(100); // idle for 4,999 ms only
    engine.advanceLogTime(15_000, false);
    expect(engine.watermarkMs).toBe(10_000);
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 0, endMs: 1000, count: 1, sum: 1, revision: 1 }]);
    engine.advanceLogTime(16_000, true); // records again: the idle clock restarts
    engine.advanceLogTime(20_999, false);
    expect(engine.watermarkMs).toBe(10_000);
    engine.advanceLogTime(30_000, false);
    expect(engine.watermarkMs).toBe(25_000);
    engine.advanceLogTime(1000, false); // log time going back never lowers the watermark
    expect(engine.watermarkMs).toBe(25_000);
  });

  it('starts the idle clock at the first log time seen', () => {
    const engine = engineWith({ idleTimeoutMs: 5000 });
    engine.advanceLogTime(100_000, false);
    expect(engine.watermarkMs).toBe(Number.MIN_SAFE_INTEGER);
    engine.advanceLogTime(105_000, false);
    expect(engine.watermarkMs).toBe(100_000);
  });

  it('aligns each key in its own zone and reports the zone', () => {
    const engine = engineWith({
      window: { kind: 'tumbling', sizeMs: 24 * hour, timeZone: 'Europe/Paris' },
      timeZoneOfKey: (key) => (key.startsWith('ny-') ? 'America/New_York' : 'Asia/Kathmandu'),
      outOfOrdernessMs: 0,
    });
    const t = Date.parse('2024-03-10T12:00:00Z');
    engine.add({ key: 'ny-1', eventTimeMs: t, value: 1 });
    engine.add({ key: 'ktm-1', eventTimeMs: t, value: 1 });
    engine.advanceLogTime(t, true);
    engine.advanceLogTime(t + 100 * hour, false);
    expect(engine.takeResults().map((r) => [r.key, r.timeZone, new Date(r.startMs).toISOString(), (r.endMs - r.startMs) / hour])).toEqual([
      ['ktm-1', 'Asia/Kathmandu', '2024-03-09T18:15:00.000Z', 24],
      ['ny-1', 'America/New_York', '2024-03-10T05:00:00.000Z', 23],
    ]);
  });

  it('throws on the first use of a key whose zone is unknown, leaving the state as it was', () => {
    const engine = engineWith({ timeZoneOfKey: (key) => (key === 'bad' ? 'Nowhere/Nada' : 'UTC') });
    expect(() => engine.add({ key: 'bad', eventTimeMs: 0, value: 1 })).toThrow('Unknown time zone "Nowhere/Nada"');
    expect(engine.openWindowCount).toBe(0);
    expect(engine.add({ key: 'good', eventTimeMs: 0, value: 1 })).toBe('applied');
  });

  it('validates each record before changing anything', () => {
    const engine = engineWith({ subKeyCount: 7 });
    expect(() => engine.add({ key: 'a', eventTimeMs: 0, value: 1, subKey: 7 })).toThrow(new RangeError('subKey must be an integer from 0 to 6 (got 7)'));
    expect(() => engine.add({ key: 'a', eventTimeMs: 0, value: 1, subKey: -1 })).toThrow(RangeError);
    expect(() => engine.add({ key: 'a', eventTimeMs: 0, value: 1, subKey: 1.5 })).toThrow(RangeError);
    expect(() => engine.add({ key: 'a', eventTimeMs: 0.5, value: 1 })).toThrow(RangeError);
    expect(() => engine.add({ key: 'a', eventTimeMs: Number.NaN, value: 1 })).toThrow(RangeError);
    expect(() => engine.add({ key: 'a', eventTimeMs: 0, value: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(() => engineWith().add({ key: 'a', eventTimeMs: 0, value: 1, subKey: 0 })).toThrow('subKeyCount is 0');
    expect(() => engine.advanceLogTime(Number.NaN, false)).toThrow(RangeError);
    expect(engine.openWindowCount).toBe(0);
    expect(engine.watermarkMs).toBe(Number.MIN_SAFE_INTEGER);
  });
});

describe('WindowEngine: sliding windows', () => {
  const sliding = (overrides: Partial<WindowEngineOptions> = {}) =>
    engineWith({ window: { kind: 'sliding', sizeMs: 1000, slideMs: 250 }, allowedLatenessMs: 0, ...overrides });

  it('adds a record to every window covering it', () => {
    const engine = sliding();
    engine.add({ key: 'a', eventTimeMs: 1100, value: 3 });
    engine.add({ key: 'a', eventTimeMs: 1250, value: 4 }); // exactly at a start: in [1250,2250), not in [250,1250)
    engine.advanceLogTime(0, true);
    engine.advanceLogTime(100_000, false);
    expect(engine.takeResults().map((r) => [r.startMs, r.endMs, r.count, r.sum])).toEqual([
      [250, 1250, 1, 3],
      [500, 1500, 2, 7],
      [750, 1750, 2, 7],
      [1000, 2000, 2, 7],
      [1250, 2250, 1, 4],
    ]);
  });

  it('applies a record to its windows still within lateness only, and calls it late when none is', () => {
    const engine = sliding({ allowedLatenessMs: 100 });
    engine.add({ key: 'a', eventTimeMs: 1550, value: 1 }); // watermark 1550
    // 1050 is in [250,1250) [500,1500) [750,1750) [1000,2000): the first has expired (1250 + 100 <= 1550).
    expect(engine.add({ key: 'a', eventTimeMs: 1050, value: 10 })).toBe('applied');
    engine.add({ key: 'a', eventTimeMs: 1700, value: 0 }); // watermark 1700: expires [500,1500) too (1600 <= 1700)
    expect(engine.add({ key: 'a', eventTimeMs: 1060, value: 100 })).toBe('applied');
    engine.add({ key: 'a', eventTimeMs: 5000, value: 0 });
    expect(engine.add({ key: 'a', eventTimeMs: 1070, value: 1000 })).toBe('late');
    expect(engine.lateRecordCount).toBe(1);
    const sums = engine.takeResults().filter((r) => r.startMs <= 1050 && r.endMs > 1050).map((r) => [r.startMs, r.sum, r.revision]);
    expect(sums).toEqual([
      [500, 10, 1],
      [750, 111, 1],
      [1000, 111, 1],
    ]);
  });

  it('requires the size to be a multiple of the slide', () => {
    expect(() => sliding({ window: { kind: 'sliding', sizeMs: 1000, slideMs: 300 } })).toThrow(
      'window.sizeMs (1000) must be a multiple of window.slideMs (300)',
    );
  });
});

describe('WindowEngine: session windows', () => {
  const sessions = (overrides: Partial<WindowEngineOptions> = {}) => engineWith({ window: { kind: 'session', gapMs: 100 }, ...overrides });

  it('spans first event to last event + gap, merging records that touch; emits by end', () => {
    const engine = sessions({ outOfOrdernessMs: 1000 });
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1100, value: 1 }); // exactly at the end: touches, merges
    engine.add({ key: 'a', eventTimeMs: 1050, value: 1 });
    engine.add({ key: 'b', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1201, value: 1 }); // one past the end: a new session
    expect(engine.takeResults()).toEqual([]); // watermark 201
    engine.add({ key: 'z', eventTimeMs: 2300, value: 1 }); // watermark 1300
    expect(engine.takeResults().map(brief)).toEqual([
      { key: 'b', startMs: 1000, endMs: 1100, count: 1, sum: 1, revision: 1 },
      { key: 'a', startMs: 1000, endMs: 1200, count: 3, sum: 3, revision: 1 },
    ]);
    engine.add({ key: 'z', eventTimeMs: 2301, value: 1 });
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 1201, endMs: 1301, count: 1, sum: 1, revision: 1 }]);
  });

  it('merges two sessions bridged by a record, silently while neither was emitted', () => {
    const engine = sessions({ outOfOrdernessMs: 1000 });
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1200, value: 2 });
    engine.add({ key: 'a', eventTimeMs: 1100, value: 4 }); // [1100,1200) touches [1000,1100) and [1200,1300)
    engine.advanceLogTime(0, true);
    engine.advanceLogTime(100_000, false);
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 1000, endMs: 1300, count: 3, sum: 7, revision: 1 }]);
  });

  it('retracts an emitted session that a late record extends, and emits the new one once closed', () => {
    const engine = sessions({ allowedLatenessMs: 1000 });
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'b', eventTimeMs: 1150, value: 0 }); // watermark 1150
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 1000, endMs: 1100, count: 1, sum: 1, revision: 1 }]);
    engine.add({ key: 'a', eventTimeMs: 1090, value: 5 }); // extends it to [1000, 1190): still open
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 1000, endMs: 1100, count: 1, sum: 1, revision: 2, retracted: true }]);
    engine.add({ key: 'b', eventTimeMs: 1200, value: 0 });
    expect(
      engine
        .takeResults()
        .map(brief)
        .filter((r) => r.key === 'a'),
    ).toEqual([{ key: 'a', startMs: 1000, endMs: 1190, count: 2, sum: 6, revision: 1 }]);
  });

  it('amends an emitted session in place when a late record stays within its bounds', () => {
    const engine = sessions({ allowedLatenessMs: 1000 });
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1050, value: 1 });
    engine.add({ key: 'b', eventTimeMs: 1200, value: 0 });
    engine.takeResults();
    engine.add({ key: 'a', eventTimeMs: 1020, value: 7 }); // 1020 + 100 <= 1150: no new bounds
    expect(engine.takeResults().map(brief)).toEqual([{ key: 'a', startMs: 1000, endMs: 1150, count: 3, sum: 9, revision: 2 }]);
  });

  it('retracts both emitted sessions a late record merges, and emits the merged one at once when already closed', () => {
    const engine = sessions({ allowedLatenessMs: 1000 });
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1200, value: 2 });
    engine.add({ key: 'b', eventTimeMs: 1500, value: 0 });
    expect(engine.takeResults().filter((r) => r.key === 'a')).toHaveLength(2);
    engine.add({ key: 'a', eventTimeMs: 1100, value: 4 });
    expect(engine.takeResults().map(brief)).toEqual([
      { key: 'a', startMs: 1000, endMs: 1100, count: 1, sum: 1, revision: 2, retracted: true },
      { key: 'a', startMs: 1200, endMs: 1300, count: 1, sum: 2, revision: 2, retracted: true },
      { key: 'a', startMs: 1000, endMs: 1300, count: 3, sum: 7, revision: 1 },
    ]);
  });

  it('calls a record late when t + allowed lateness <= watermark, even inside a session still held', () => {
    const engine = sessions({ window: { kind: 'session', gapMs: 1000 }, allowedLatenessMs: 100 });
    engine.add({ key: 'a', eventTimeMs: 1000, value: 1 });
    engine.add({ key: 'a', eventTimeMs: 1500, value: 1 }); // session [1000, 2500), watermark 1500
    expect(engine.add({ key: 'a', eventTimeMs: 1400, value: 1 })).toBe('late'); // 1400 + 100 <= 1500
    expect(engine.add({ key: 'a', eventTimeMs: 1401, value: 1 })).toBe('applied');
    expect(engine.lateRecordCount).toBe(1);
  });

  it('reports sessions in UTC', () => {
    const engine = sessions();
    engine.add({ key: 'a', eventTimeMs: 0, value: 1 });
    engine.add({ key: 'b', eventTimeMs: 1000, value: 1 });
    expect(engine.takeResults().map((r) => r.timeZone)).toEqual(['UTC']);
  });
});

describe('WindowEngine options', () => {
  const base: WindowEngineOptions = { window: { kind: 'tumbling', sizeMs: 1000 }, outOfOrdernessMs: 0, allowedLatenessMs: 0, idleTimeoutMs: 1 };
  it.each([
    [{ outOfOrdernessMs: -1 }, 'outOfOrdernessMs must be an integer number of ms from 0'],
    [{ allowedLatenessMs: 1.5 }, 'allowedLatenessMs must be an integer'],
    [{ idleTimeoutMs: 0 }, 'idleTimeoutMs must be an integer number of ms from 1'],
    [{ subKeyCount: -1 }, 'subKeyCount must be an integer from 0 to 1024'],
    [{ subKeyCount: 2000 }, 'subKeyCount must be an integer from 0 to 1024'],
    [{ window: { kind: 'tumbling', sizeMs: 0 } }, 'window.sizeMs must be an integer number of ms from 1'],
    [{ window: { kind: 'tumbling', sizeMs: 1000, timeZone: 'Europe/Atlantis' } }, 'Unknown time zone "Europe/Atlantis"'],
    [{ window: { kind: 'sliding', sizeMs: 1000, slideMs: 0 } }, 'window.slideMs must be an integer'],
    [{ window: { kind: 'sliding', sizeMs: 1_000_000, slideMs: 1 } }, 'window.sizeMs / window.slideMs must be at most 1000'],
    [{ window: { kind: 'session', gapMs: -5 } }, 'window.gapMs must be an integer'],
    [{ window: { kind: 'hopping', sizeMs: 1 } }, "window.kind must be 'tumbling', 'sliding' or 'session'"],
    [{ timeZoneOfKey: 'UTC' }, 'timeZoneOfKey must be a function'],
  ])('rejects %j', (overrides, message) => {
    expect(() => new WindowEngine({ ...base, ...(overrides as Partial<WindowEngineOptions>) })).toThrow(message);
  });
});
