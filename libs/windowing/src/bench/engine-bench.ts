/**
 * Micro-benchmark of the window engine (not a test). Run with a GC handle for the memory figures:
 *   node --expose-gc --import tsx libs/windowing/src/bench/engine-bench.ts
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { WindowEngine, type WindowEngineOptions, type WindowInput } from '../index';

const hour = 3_600_000;
const t0 = Date.parse('2025-06-02T06:00:00Z');
const gc = (globalThis as { gc?: () => void }).gc;

/** Heap in use, typed-array buffers included (they live outside the JS heap proper). */
function collect(): number {
  if (gc !== undefined) for (let i = 0; i < 3; i++) gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/** Counts garbage collections while `work` runs: none means the loop allocates (next to) nothing. */
async function countingCollections(work: () => void): Promise<number> {
  let collections = 0;
  const observer = new PerformanceObserver((list) => {
    collections += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  work();
  await new Promise((resolve) => setTimeout(resolve, 50)); // entries are delivered asynchronously
  observer.disconnect();
  return collections;
}

const plazaOptions = (window: WindowEngineOptions['window']): WindowEngineOptions => ({
  window,
  timeZoneOfKey: (key) => (key.charCodeAt(6) % 2 === 0 ? 'Europe/Paris' : 'America/New_York'),
  outOfOrdernessMs: 30_000,
  allowedLatenessMs: hour,
  idleTimeoutMs: 60_000,
  subKeyCount: 7,
});

/** add() throughput over `keys` keys, records 1 ms apart in event time with some disorder. */
async function addRate(label: string, window: WindowEngineOptions['window'], keyCount: number, records: number): Promise<void> {
  const engine = new WindowEngine(plazaOptions(window));
  const keys = Array.from({ length: keyCount }, (_, i) => `plaza-${i}/lane-${i % 8}`);
  const input: WindowInput = { key: keys[0], eventTimeMs: t0, value: 0, subKey: 0 };
  const run = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      input.key = keys[i % keyCount];
      input.eventTimeMs = t0 + i - ((i * 7919) % 20_000); // up to 20 s out of order
      input.value = i % 1000;
      input.subKey = i % 7;
      engine.add(input);
      if ((i & 0xffff) === 0) engine.takeResults();
    }
  };
  run(0, records); // warm up: windows exist, code is optimised
  let elapsed = 0;
  const collections = await countingCollections(() => {
    const start = process.hrtime.bigint();
    run(records, 2 * records);
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  });
  const rate = records / elapsed;
  console.log(
    `${label.padEnd(40)} ${(rate / 1e6).toFixed(2)} M adds/s  (${keyCount} keys, ${engine.openWindowCount} windows held, ${collections} GCs in ${records} adds incl. takeResults)`,
  );
}

function memoryAndSnapshot(keyCount: number): void {
  const before = collect();
  // Flat strings, as protobuf-decoded ones are (a template literal would leave heavier cons strings).
  const utf8 = new TextEncoder();
  const decoder = new TextDecoder();
  const keys = Array.from({ length: keyCount }, (_, i) => decoder.decode(utf8.encode(`plaza-${String(i).padStart(7, '0')}/lane-${i % 8}`)));
  const withKeys = collect();
  const options = plazaOptions({ kind: 'tumbling', sizeMs: hour });
  const engine = new WindowEngine(options);
  const input: WindowInput = { key: '', eventTimeMs: t0, value: 0, subKey: 0 };
  for (let i = 0; i < keyCount; i++) {
    input.key = keys[i];
    input.eventTimeMs = t0 + (i % hour);
    input.value = i % 500;
    input.subKey = i % 7;
    engine.add(input);
  }
  const after = collect();
  const perWindow = (after - withKeys) / engine.openWindowCount;
  const keyBytes = (withKeys - before) / keyCount;
  console.log(
    `${keyCount} keys with one open hourly window each (7 sub-key counters): ${perWindow.toFixed(0)} bytes/window of heap held by the engine, ` +
      `+ ${keyBytes.toFixed(0)} bytes/key for the key string (${keys[0].length} chars; the engine keeps it) and the bench's array slot`,
  );

  let start = process.hrtime.bigint();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (const chunk of engine.snapshotChunks()) {
    chunks.push(chunk);
    bytes += chunk.length;
  }
  const snapshotSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  start = process.hrtime.bigint();
  const restored = WindowEngine.restore(options, chunks);
  const restoreSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(
    `snapshot of ${engine.openWindowCount} windows: ${(bytes / 2 ** 20).toFixed(1)} MiB in ${chunks.length} chunks, ${snapshotSeconds.toFixed(2)} s; ` +
      `restore ${restoreSeconds.toFixed(2)} s (${restored.openWindowCount} windows)`,
  );
}

async function main(): Promise<void> {
  if (gc === undefined) console.log('(no --expose-gc: memory figures are rough)');
  await addRate('tumbling 1 h, existing windows', { kind: 'tumbling', sizeMs: hour }, 10_000, 5_000_000);
  await addRate('tumbling 15 min, existing windows', { kind: 'tumbling', sizeMs: hour / 4 }, 100_000, 5_000_000);
  await addRate('sliding 1 h / 15 min (4 windows/record)', { kind: 'sliding', sizeMs: hour, slideMs: hour / 4 }, 10_000, 2_000_000);
  await addRate('sessions, gap 5 min', { kind: 'session', gapMs: 300_000 }, 10_000, 5_000_000);
  memoryAndSnapshot(1_000_000);
}

void main();
