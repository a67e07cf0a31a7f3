/**
 * The ingestor with nats-server forcing every JetStream write to disk (`always`) beside the server's
 * default (`interval`), in one run on one machine (ADR 0014). Each measurement gets its own nats-server
 * and ingestor and the same two loads: saturation (throughput) and a steady offered rate (latency as a
 * station sees it). Rounds alternate the order (interval, always, always, interval, ...) so that a
 * change of the machine's load during the run does not favour one setting; the disk's own flush
 * latency is probed before each measurement, since `always` costs about one flush per append.
 */
import { closeSync, fdatasyncSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import {
  findNatsServerBinary,
  fsyncMechanism,
  natsServerVersion,
  startIngestor,
  startNats,
  tempDir,
  type FsyncMechanism,
  type NatsFsync,
} from '@tollstream/testing';
import { runIngestLoad, type IngestLoadFigures } from './ingest-load';
import { cpuSeconds, percentile } from './stats';

export interface IngestDurabilityOptions {
  seconds: number;
  batchSize: number;
  concurrentBatches: number;
  steadyRecordsPerSecond: number;
  steadyBatchSize: number;
  rounds: number;
}

export interface IngestDurabilityPhase extends IngestLoadFigures {
  ingestorCpuCores: number;
  natsServerCpuCores: number;
}

export interface IngestDurabilityMeasurement {
  fsync: NatsFsync;
  round: number;
  /** 1-minute load average of the machine when the measurement started (others' work included). */
  loadAverageAtStart: number;
  /** write(4 KiB) + fdatasync on the store's file system, just before the measurement. */
  diskFlushMs: { p50: number; p99: number };
  saturation: IngestDurabilityPhase;
  steady: IngestDurabilityPhase;
}

export interface IngestDurabilityResults {
  options: IngestDurabilityOptions;
  natsServerVersion: string;
  /** How `always` was applied: sync_interval (2.10+) or the synchronous store directory (2.9). */
  alwaysMechanism: FsyncMechanism;
  measurements: IngestDurabilityMeasurement[];
}

const TOKEN = 'bench-station-token-0000000001';
const STATION_IDS = Array.from({ length: 64 }, (_, i) => `st-${String(i).padStart(3, '0')}`);
const FLUSH_PROBES = 100;
const round2 = (value: number) => Math.round(value * 100) / 100;

/** interval, always, always, interval, interval, always, ... */
export function alternatingOrder(rounds: number): Array<{ fsync: NatsFsync; round: number }> {
  return Array.from({ length: rounds }, (_, round) => {
    const pair: NatsFsync[] = round % 2 === 0 ? ['interval', 'always'] : ['always', 'interval'];
    return pair.map((fsync) => ({ fsync, round: round + 1 }));
  }).flat();
}

function probeDiskFlush(dir: string): { p50: number; p99: number } {
  const file = join(dir, 'flush-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 7);
  const samples: number[] = [];
  try {
    for (let i = 0; i < FLUSH_PROBES; i++) {
      const started = performance.now();
      writeSync(fd, block);
      fdatasyncSync(fd);
      samples.push(performance.now() - started);
    }
  } finally {
    closeSync(fd);
  }
  return { p50: round2(percentile(samples, 50)), p99: round2(percentile(samples, 99)) };
}

/** CPU cores a process used while `work` ran (NaN when /proc cannot be read). */
async function withCpu<T>(pids: { ingestor: number; natsServer: number | undefined }, work: () => Promise<T>): Promise<T & { ingestorCpuCores: number; natsServerCpuCores: number }> {
  const read = (pid: number | undefined) => (pid === undefined ? undefined : cpuSeconds(pid));
  const before = { ingestor: read(pids.ingestor), natsServer: read(pids.natsServer) };
  const started = performance.now();
  const result = await work();
  const seconds = (performance.now() - started) / 1000;
  const cores = (end: number | undefined, start: number | undefined) => (end === undefined || start === undefined ? Number.NaN : round2((end - start) / seconds));
  return { ...result, ingestorCpuCores: cores(read(pids.ingestor), before.ingestor), natsServerCpuCores: cores(read(pids.natsServer), before.natsServer) };
}

async function measure(fsync: NatsFsync, round: number, options: IngestDurabilityOptions, progress: (text: string) => void): Promise<IngestDurabilityMeasurement> {
  const dir = await tempDir('bench-durability');
  try {
    const loadAverageAtStart = round2(loadavg()[0]);
    const diskFlushMs = probeDiskFlush(dir.path);
    const nats = await startNats({ fsync });
    try {
      const credentialsFile = join(dir.path, 'stations.json');
      writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'bench', token: TOKEN, stationIds: STATION_IDS }] }));
      const ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile });
      try {
        const pids = { ingestor: ingestor.pid, natsServer: nats.pid };
        const load = {
          address: `127.0.0.1:${ingestor.grpcPort}`,
          token: TOKEN,
          stationIds: STATION_IDS,
          durationSeconds: options.seconds,
          batchSize: options.batchSize,
          concurrentBatches: options.concurrentBatches,
          channels: 4,
        };
        progress(`round ${round}, fsync ${fsync}: saturation ${options.seconds} s... `);
        const saturation = await withCpu(pids, () => runIngestLoad(load));
        progress(`steady ${options.steadyRecordsPerSecond} records/s ${options.seconds} s... `);
        const steady = await withCpu(pids, () =>
          runIngestLoad({ ...load, batchSize: options.steadyBatchSize, concurrentBatches: 256, targetRecordsPerSecond: options.steadyRecordsPerSecond }),
        );
        progress('done\n');
        return { fsync, round, loadAverageAtStart, diskFlushMs, saturation, steady };
      } finally {
        await ingestor.stop();
      }
    } finally {
      await nats.stop();
    }
  } finally {
    await dir.remove();
  }
}

export async function runIngestDurabilityBench(options: IngestDurabilityOptions, progress: (text: string) => void): Promise<IngestDurabilityResults> {
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new Error(`--durability-rounds: expected a whole number >= 1, got ${options.rounds}`);
  const version = natsServerVersion(findNatsServerBinary());
  const measurements: IngestDurabilityMeasurement[] = [];
  for (const { fsync, round } of alternatingOrder(options.rounds)) measurements.push(await measure(fsync, round, options, progress));
  return {
    options,
    natsServerVersion: `${version.major}.${version.minor}.${version.patch}`,
    alwaysMechanism: fsyncMechanism('always', version),
    measurements,
  };
}

function range(values: number[], digits = 0): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return 'n/a';
  const scale = 10 ** digits;
  const low = Math.round(Math.min(...finite) * scale) / scale;
  const high = Math.round(Math.max(...finite) * scale) / scale;
  return low === high ? String(low) : `${low} - ${high}`;
}

export function printIngestDurabilityBench(results: IngestDurabilityResults): void {
  const { options } = results;
  const steady = `steady ${options.steadyRecordsPerSecond}/s`;
  const row = (pick: (m: IngestDurabilityMeasurement) => number | string) =>
    Object.fromEntries(results.measurements.map((m) => [`${m.fsync} #${m.round}`, pick(m)]));
  console.log(
    `\nIngestor, nats-server ${results.natsServerVersion} fsync "interval" (default) and "always" ` +
      `(${results.alwaysMechanism === 'config' ? 'sync_interval: always' : 'emulated: chattr +S on the store, 2.9 has no sync_interval'}), one run (ADR 0014)`,
  );
  console.table({
    'machine load average (1 min) at start': row((m) => m.loadAverageAtStart),
    'disk write+fdatasync p50 / p99 (ms)': row((m) => `${m.diskFlushMs.p50} / ${m.diskFlushMs.p99}`),
    [`saturation: accepted records/s (batches of ${options.batchSize}, ${options.concurrentBatches} in flight)`]: row((m) => m.saturation.acceptedPerSecond),
    'saturation: batch latency p50 / p99 (ms)': row((m) => `${m.saturation.batchLatencyMs.p50} / ${m.saturation.batchLatencyMs.p99}`),
    'saturation: nats-server / ingestor CPU (cores)': row((m) => `${m.saturation.natsServerCpuCores} / ${m.saturation.ingestorCpuCores}`),
    [`${steady}: accepted records/s (batches of ${options.steadyBatchSize})`]: row((m) => m.steady.acceptedPerSecond),
    [`${steady}: batch latency p50 / p99 (ms)`]: row((m) => `${m.steady.batchLatencyMs.p50} / ${m.steady.batchLatencyMs.p99}`),
    [`${steady}: nats-server / ingestor CPU (cores)`]: row((m) => `${m.steady.natsServerCpuCores} / ${m.steady.ingestorCpuCores}`),
    'records not accepted (both phases)': row((m) => m.saturation.notAccepted + m.steady.notAccepted),
  });
  const of = (fsync: NatsFsync) => results.measurements.filter((m) => m.fsync === fsync);
  const summary = (pick: (m: IngestDurabilityMeasurement) => number, digits = 0) => ({
    interval: range(of('interval').map(pick), digits),
    always: range(of('always').map(pick), digits),
  });
  console.log('Ranges over the rounds');
  console.table({
    'saturation: accepted records/s': summary((m) => m.saturation.acceptedPerSecond),
    'saturation: batch latency p50 (ms)': summary((m) => m.saturation.batchLatencyMs.p50, 1),
    'saturation: batch latency p99 (ms)': summary((m) => m.saturation.batchLatencyMs.p99, 1),
    'saturation: nats-server CPU (cores)': summary((m) => m.saturation.natsServerCpuCores, 2),
    [`${steady}: batch latency p50 (ms)`]: summary((m) => m.steady.batchLatencyMs.p50, 1),
    [`${steady}: batch latency p99 (ms)`]: summary((m) => m.steady.batchLatencyMs.p99, 1),
    [`${steady}: nats-server CPU (cores)`]: summary((m) => m.steady.natsServerCpuCores, 2),
    'disk write+fdatasync p50 (ms)': summary((m) => m.diskFlushMs.p50, 2),
  });
  if (results.measurements.some((m) => m.saturation.exhausted)) console.log('NOTE: the pre-encoded requests ran out before the time was up: that rate is a lower bound.');
}
