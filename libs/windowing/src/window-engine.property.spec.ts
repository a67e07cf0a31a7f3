import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { bruteForce, drive, finalState, identityOf, type EngineOp } from './__fixtures__/brute-force';
import type { WindowEngineOptions, WindowSpec } from './types';
import { WindowEngine } from './window-engine';

/**
 * Random out-of-order streams against a batch brute force, plus snapshot/restore at a random point.
 * Durations are drawn in units: 1 ms for dense streams, 1 minute near DST changes (where zones matter).
 */
interface Scale {
  unitMs: number;
  specs: WindowSpec[];
  gap: [number, number];
  outOfOrderness: [number, number];
  lateness: [number, number];
  idle: [number, number];
  advance: number;
  eventOffset: [number, number];
  bases: number[];
  zones: string[];
}

const dense: Scale = {
  unitMs: 1,
  specs: [
    { kind: 'tumbling', sizeMs: 500 },
    { kind: 'tumbling', sizeMs: 1000 },
    { kind: 'sliding', sizeMs: 1000, slideMs: 250 },
    { kind: 'sliding', sizeMs: 1500, slideMs: 500 },
    { kind: 'sliding', sizeMs: 600, slideMs: 600 },
  ],
  gap: [1, 700],
  outOfOrderness: [0, 600],
  lateness: [0, 2500],
  idle: [1, 3000],
  advance: 150,
  eventOffset: [-2000, 300],
  bases: [0, 1_700_000_000_000],
  zones: ['UTC'],
};

const minute = 60_000;
// Offset changes: New York fall-back and spring-forward, Paris fall-back, Lord Howe's 30-minute spring-forward.
const nearDst: Scale = {
  unitMs: minute,
  specs: [
    { kind: 'tumbling', sizeMs: 30 * minute },
    { kind: 'tumbling', sizeMs: 60 * minute },
    { kind: 'tumbling', sizeMs: 120 * minute },
    { kind: 'tumbling', sizeMs: 1440 * minute },
    { kind: 'sliding', sizeMs: 60 * minute, slideMs: 15 * minute },
    { kind: 'sliding', sizeMs: 2880 * minute, slideMs: 1440 * minute },
    { kind: 'sliding', sizeMs: 1440 * minute, slideMs: 60 * minute },
  ],
  gap: [1, 90],
  outOfOrderness: [0, 90],
  lateness: [0, 240],
  idle: [1, 600],
  advance: 30,
  eventOffset: [-240, 30],
  bases: [Date.UTC(2024, 10, 3, 0), Date.UTC(2024, 2, 10, 1), Date.UTC(2024, 9, 26, 18), Date.UTC(2024, 9, 5, 8)],
  zones: ['America/New_York', 'Europe/Paris', 'Australia/Lord_Howe', 'Asia/Kathmandu'],
};

const keys = ['k0', 'k1', 'k2', 'k3'];

interface Scenario {
  options: WindowEngineOptions;
  ops: EngineOp[];
  snapshotAt: number;
  chunkBytes: number;
  rechunkSeed: number;
}

type RawOp =
  | { op: 'add'; advance: number; key: string; offset: number; value: number; subKey: number }
  | { op: 'log'; advance: number; offset: number; carried: boolean }
  | { op: 'take' };

function scenarios(scale: Scale, kind: WindowSpec['kind']): fc.Arbitrary<Scenario> {
  const unit = scale.unitMs;
  const specArb: fc.Arbitrary<WindowSpec> =
    kind === 'session'
      ? fc.integer({ min: scale.gap[0], max: scale.gap[1] }).map((gap) => ({ kind: 'session', gapMs: gap * unit }))
      : fc.constantFrom(...scale.specs.filter((s) => s.kind === kind));
  const rawOp: fc.Arbitrary<RawOp> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('add' as const),
        advance: fc.nat(scale.advance),
        key: fc.constantFrom(...keys),
        offset: fc.integer({ min: scale.eventOffset[0], max: scale.eventOffset[1] }),
        value: fc.integer({ min: -20, max: 100 }),
        subKey: fc.nat(2),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('log' as const),
        advance: fc.nat(scale.advance),
        offset: fc.nat(scale.idle[1]),
        carried: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.constant({ op: 'take' as const }) },
  );
  return fc
    .record({
      window: specArb,
      outOfOrderness: fc.integer({ min: scale.outOfOrderness[0], max: scale.outOfOrderness[1] }),
      lateness: fc.integer({ min: scale.lateness[0], max: scale.lateness[1] }),
      idle: fc.integer({ min: scale.idle[0], max: scale.idle[1] }),
      subKeyCount: fc.constantFrom(0, 3),
      base: fc.constantFrom(...scale.bases),
      raw: fc.array(rawOp, { minLength: 1, maxLength: 120, size: 'max' }),
      snapshotFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      chunkBytes: fc.constantFrom(1, 7, 64, 256 * 1024),
      rechunkSeed: fc.nat(),
    })
    .map((r) => {
      const options: WindowEngineOptions = {
        window: r.window,
        outOfOrdernessMs: r.outOfOrderness * unit,
        allowedLatenessMs: r.lateness * unit,
        idleTimeoutMs: r.idle * unit,
        subKeyCount: r.subKeyCount,
        timeZoneOfKey: (key) => scale.zones[Number(key.slice(1)) % scale.zones.length],
      };
      let cursor = 0;
      const ops: EngineOp[] = r.raw.map((raw): EngineOp => {
        if (raw.op === 'take') return raw;
        cursor += raw.advance;
        if (raw.op === 'log') return { op: 'log', logTimeMs: r.base + (cursor + raw.offset) * unit, carried: raw.carried };
        return {
          op: 'add',
          input: {
            key: raw.key,
            eventTimeMs: r.base + (cursor + raw.offset) * unit,
            value: raw.value,
            ...(r.subKeyCount > 0 ? { subKey: raw.subKey } : {}),
          },
        };
      });
      // Then idle long enough for the watermark to pass everything: all windows close and expire.
      const far = 4_000_000_000_000_000;
      ops.push({ op: 'take' }, { op: 'log', logTimeMs: far, carried: false }, { op: 'log', logTimeMs: far + 100_000_000_000_000, carried: false }, { op: 'take' });
      return {
        options,
        ops,
        snapshotAt: Math.floor(r.snapshotFraction * ops.length),
        chunkBytes: r.chunkBytes,
        rechunkSeed: r.rechunkSeed,
      };
    });
}

/** The same bytes cut at other places (storage need not keep the writer's chunks). */
function rechunk(chunks: Uint8Array[], seed: number): Uint8Array[] {
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const out: Uint8Array[] = [];
  let state = seed | 1;
  for (let i = 0; i < all.length; ) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const n = state % 97;
    out.push(all.subarray(i, i + n)); // empty pieces included on purpose
    i += n;
  }
  return out;
}

/** Deep equality at node speed, failing with a short message (fast-check then shrinks quickly). */
function same<T>(actual: T, expected: T, what: string): void {
  if (isDeepStrictEqual(actual, expected)) return;
  if (Array.isArray(actual) && Array.isArray(expected)) {
    const i = actual.findIndex((a, j) => !isDeepStrictEqual(a, expected[j]));
    const at = i === -1 ? actual.length : i;
    fail(`${what} differ at [${at}]: ${JSON.stringify(actual[at])} instead of ${JSON.stringify(expected[at])}`);
  }
  fail(`${what} differ: ${JSON.stringify(actual)} instead of ${JSON.stringify(expected)}`);
}

function fail(message: string): never {
  throw new Error(message);
}

function checkScenario(s: Scenario): void {
  const engine = new WindowEngine(s.options);
  const run = drive(engine, s.ops);
  const oracle = bruteForce(s.options, s.ops);

  // The engine and the brute force agree on the watermark and on which records were late.
  same(run.watermarks, oracle.watermarks, 'watermarks');
  same(run.outcomes, oracle.applied.map((a) => (a ? 'applied' : 'late')), 'outcomes');
  same(engine.lateRecordCount, oracle.lateCount, 'lateRecordCount');
  // (a) Final state: the latest non-retracted revision of every window equals the batch computation.
  same(finalState(run.results), oracle.windows, 'final windows');
  same(engine.openWindowCount, 0, 'openWindowCount');

  // (b) Revisions run 1, 2, 3, ... per identity; nothing before the watermark passes the end; nothing after a retraction.
  const lastRevision = new Map<string, number>();
  const retracted = new Set<string>();
  for (const { result, watermark } of run.results) {
    const id = identityOf(result);
    if (retracted.has(id)) fail(`${id} emitted after its retraction`);
    if (result.revision !== (lastRevision.get(id) ?? 0) + 1) fail(`${id}: revision ${result.revision} after ${lastRevision.get(id)}`);
    lastRevision.set(id, result.revision);
    if (result.endMs > watermark) fail(`${id} emitted at watermark ${watermark}, before its end`);
    if (result.retracted) {
      if (s.options.window.kind !== 'session') fail(`${id}: retraction of an aligned window`);
      retracted.add(id);
    }
  }

  // Order within one takeResults: retractions and amendments of windows closed before, then the
  // newly closed windows (first emissions) by end.
  let previousWatermark = Number.MIN_SAFE_INTEGER;
  let from = 0;
  s.ops.forEach((op, i) => {
    if (op.op !== 'take') return;
    let lastNewEnd = Number.NEGATIVE_INFINITY;
    for (const { result } of run.results.slice(from, run.resultCounts[i])) {
      if (result.endMs > previousWatermark) {
        if (result.revision !== 1 || result.endMs < lastNewEnd) fail(`${identityOf(result)} out of order at op ${i}`);
        lastNewEnd = result.endMs;
      } else if (lastNewEnd !== Number.NEGATIVE_INFINITY) {
        fail(`${identityOf(result)} (closed before) after a newly closed window at op ${i}`);
      }
    }
    from = run.resultCounts[i];
    previousWatermark = run.watermarks[i];
  });

  // Promptness: after every takeResults, the emitted view (latest non-retracted revisions) is the
  // truth for every window the watermark has closed, and holds nothing else.
  s.ops.forEach((op, i) => {
    if (op.op === 'take') same(finalState(run.results.slice(0, run.resultCounts[i])), oracle.closedAtTake.get(i), `emitted view at op ${i}`);
  });

  // (c) Snapshot at a random point, and just before a random takeResults (when changes are pending),
  // restore, continue: exactly the same outputs in the same order.
  const takes = s.ops.flatMap((op, i) => (op.op === 'take' ? [i] : []));
  for (const at of [s.snapshotAt, takes[s.rechunkSeed % takes.length]]) {
    const before = new WindowEngine(s.options);
    const resumed = drive(before, s.ops, 0, at);
    const chunks = [...before.snapshotChunks(s.chunkBytes)];
    const restored = WindowEngine.restore(s.options, rechunk(chunks, s.rechunkSeed));
    same(
      [restored.watermarkMs, restored.openWindowCount, restored.lateRecordCount],
      [before.watermarkMs, before.openWindowCount, before.lateRecordCount],
      'restored counters',
    );
    drive(restored, s.ops, at, s.ops.length, resumed);
    same(resumed, run, `run resumed from a snapshot at op ${at}`);
  }
}

describe('WindowEngine against a brute force (property)', () => {
  for (const kind of ['tumbling', 'sliding', 'session'] as const) {
    it(`${kind}: dense out-of-order streams`, () => {
      fc.assert(fc.property(scenarios(dense, kind), checkScenario), { numRuns: 150 });
    });
  }
  for (const kind of ['tumbling', 'sliding'] as const) {
    it(`${kind}: streams across DST changes in several zones`, () => {
      fc.assert(fc.property(scenarios(nearDst, kind), checkScenario), { numRuns: 100 });
    });
  }
});
