/**
 * npm run bench [-- --json FILE] [--seconds N]
 * Measures the ingestor beside the raw JetStream limits of the same machine, in the same run.
 */
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { startIngestor, startNats, tempDir } from '@tollstream/testing';
import { runIngestLoad } from './ingest-load';
import { measureRawJetStream } from './raw-jetstream';
import { cpuSeconds, peakRssMiB } from './stats';

const program = new Command()
  .name('bench')
  .description('tollstream benchmarks: ingest throughput and latency beside raw JetStream rates')
  .option('--json <file>', 'also write the results as JSON')
  .option('--seconds <n>', 'duration of each load phase', '15')
  .option('--batch-size <n>', 'records per SubmitTransactions call', '1000')
  .option('--concurrency <n>', 'batches in flight', '16')
  .option('--steady-rate <n>', 'offered load (records/s) of the latency phase', '50000')
  .parse();

async function main(): Promise<void> {
  const options = program.opts<{ json?: string; seconds: string; batchSize: string; concurrency: string; steadyRate: string }>();
  const nats = await startNats();
  const dir = await tempDir('bench');
  const token = 'bench-station-token-0000000001';
  const stationIds = Array.from({ length: 64 }, (_, i) => `st-${String(i).padStart(3, '0')}`);
  const credentialsFile = join(dir.path, 'stations.json');
  writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'bench', token, stationIds }] }));
  try {
    process.stdout.write('measuring raw JetStream rates... ');
    const raw = await measureRawJetStream(nats.url);
    console.log('done');

    const ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile });
    const cpuBefore = cpuSeconds(ingestor.pid) ?? 0;
    process.stdout.write(`ingest at saturation for ${options.seconds} s... `);
    const loadOptions = {
      address: `127.0.0.1:${ingestor.grpcPort}`,
      token,
      stationIds,
      durationSeconds: Number(options.seconds),
      batchSize: Number(options.batchSize),
      concurrentBatches: Number(options.concurrency),
      channels: 4,
    };
    const load = await runIngestLoad(loadOptions);
    console.log('done');
    const ingestorCpu = (cpuSeconds(ingestor.pid) ?? 0) - cpuBefore;
    process.stdout.write(`ingest at a steady ${options.steadyRate} records/s for ${options.seconds} s... `);
    const steady = await runIngestLoad({
      ...loadOptions,
      batchSize: 250,
      concurrentBatches: 256,
      targetRecordsPerSecond: Number(options.steadyRate),
    });
    console.log('done');
    const ingestorPeakRss = peakRssMiB(ingestor.pid);
    await ingestor.stop();

    const results = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
      rawJetStream: raw,
      ingest: {
        ...load,
        batchSize: Number(options.batchSize),
        concurrentBatches: Number(options.concurrency),
        ingestorCpuCoresUsed: Math.round((ingestorCpu / Number(options.seconds)) * 100) / 100,
        ingestorPeakRssMiB: ingestorPeakRss === undefined ? undefined : Math.round(ingestorPeakRss),
      },
      steady: { offeredRecordsPerSecond: Number(options.steadyRate), batchSize: 250, ...steady },
      targets: { ingestRecordsPerSecond: 100_000 },
    };
    console.log('\nRaw JetStream on this machine (same run)');
    console.table({
      'publish, one message per record (msg/s)': raw.perMessagePublishPerSecond,
      'publish, 500 records per message (records/s)': raw.packedRecordsPublishPerSecond,
      'consume, pull consumer (msg/s)': raw.consumePerSecond,
    });
    console.log('Ingestor (one process, records acknowledged as stored)');
    console.table({
      'accepted records/s': load.acceptedPerSecond,
      'target records/s': 100_000,
      'batch latency p50 (ms)': load.batchLatencyMs.p50,
      'batch latency p99 (ms)': load.batchLatencyMs.p99,
      'batch size': Number(options.batchSize),
      'ingestor CPU (cores)': results.ingest.ingestorCpuCoresUsed,
      'ingestor peak RSS (MiB)': results.ingest.ingestorPeakRssMiB,
      'records not accepted': load.notAccepted,
    });
    if (load.exhausted) console.log('NOTE: the pre-encoded requests ran out before the time was up: the rate above is a lower bound.');
    console.log(`Ingestor at a steady offered load of ${options.steadyRate} records/s (batches of 250)`);
    console.table({
      'accepted records/s': steady.acceptedPerSecond,
      'batch latency p50 (ms)': steady.batchLatencyMs.p50,
      'batch latency p99 (ms)': steady.batchLatencyMs.p99,
      'records not accepted': steady.notAccepted,
    });
    if (options.json) writeFileSync(options.json, JSON.stringify(results, null, 2));
  } finally {
    await nats.stop();
    await dir.remove();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
