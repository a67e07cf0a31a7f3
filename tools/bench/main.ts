/**
 * npm run bench [-- --json FILE] [--seconds N] [--only PHASE[,PHASE...]] (phases: ingest, windower, warehouse, billing, traffic, notifier, pipeline; ingest-durability only when named)
 * Measures, each beside the raw limit of the same machine in the same run: the ingestor (raw
 * JetStream publish), the windower (raw JetStream consume of the same stream), the
 * warehouse-loader (raw chDB insert of the same rows), and billing-threshold (results applied/s,
 * breach detection latency), and the whole pipeline end to end (highest sustained rate; alert
 * latencies, warehouse freshness, CPU and RSS per process at that rate and at 50,000 records/s).
 * `--only ingest-durability` (run only when asked): the ingestor with nats-server's default fsync
 * beside fsync on every write, side by side (ADR 0014).
 * With the stage phases (ingest, windower, warehouse, billing) in the run: the machine limit (each
 * stage's CPU per record alone, summed, cores × 1e6 / sum) and, with the pipeline phase too, the
 * pipeline's highest sustained rate as a share of it and the next limit (machine-limit.ts).
 */
import { Command, InvalidArgumentError } from 'commander';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { startIngestor, startNats, tempDir } from '@tollstream/testing';
import { runIngestLoad } from './ingest-load';
import { measureRawJetStream } from './raw-jetstream';
import { runWarehouseBench, type WarehouseBenchResults } from './warehouse-load';
import { printWindowerBench, runWindowerBench } from './windower-load';
import { printBillingBench, runBillingBench } from './billing-load';
import { printNotifierBench, runNotifierBench } from './notifier-load';
import { printTrafficBench, runTrafficBench } from './traffic-load';
import { LOAD_GENERATOR, pipelineDefaults, printPipelineBench, runPipelineBench } from './pipeline-bench';
import { machineLimit, machineLimitLines, microsecondsPerRecord, type StageAlone } from './machine-limit';
import { parseOnly, phaseRuns, STAGE_PHASES } from './phases';
import { cpuSeconds, peakRssMiB } from './stats';
import { printIngestDurabilityBench, runIngestDurabilityBench } from './ingest-durability';

/** --only through commander: a bad phase is a usage error (message and exit code 1, no stack). */
function onlyOption(value: string): string[] | undefined {
  try {
    return parseOnly(value);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

const program = new Command()
  .name('bench')
  .description('tollstream benchmarks: ingest throughput and latency beside raw JetStream rates')
  .option('--json <file>', 'also write the results as JSON')
  .option('--seconds <n>', 'duration of each load phase', '15')
  .option('--batch-size <n>', 'records per SubmitTransactions call', '1000')
  .option('--concurrency <n>', 'batches in flight', '16')
  .option('--steady-rate <n>', 'offered load (records/s) of the latency phase', '50000')
  .option('--only <phases>', 'run only these phases (comma-separated): ingest, windower, warehouse, billing, traffic, notifier, pipeline; ingest-durability runs only when named', onlyOption)
  .option('--durability-steady-rate <n>', 'offered load (records/s) of the steady phase of ingest-durability', '20000')
  .option('--durability-rounds <n>', 'rounds of ingest-durability (each measures both settings, in alternating order)', '2')
  .option('--windower-records <n>', 'transactions pre-filled in the stream for the windower throughput phase', '2000000')
  .option('--windower-accounts <n>', 'distinct accounts held in open spend windows for the windower memory phase', '1000000')
  .option('--warehouse-rows <n>', 'transactions pre-filled in the stream for the warehouse phase', '1000000')
  .option('--warehouse-batch-rows <n>', 'WAREHOUSE_BATCH_MAX_ROWS of the loader (and raw insert batch size)', '50000')
  .option('--warehouse-steady-seconds <n>', 'duration of the warehouse freshness phase', '30')
  .option('--pipeline-step-seconds <n>', 'duration of each offered-rate step of the pipeline phase', String(pipelineDefaults.stepSeconds))
  .option('--pipeline-partitions <n>', 'TOLL_TX partitions and spend shards of the pipeline phase (0: the services\' default, 8)', String(pipelineDefaults.partitions))
  .option('--pipeline-rates <list>', 'offered rates (records/s, comma-separated) of the pipeline phase instead of the rate search')
  .parse();

interface BenchOptions {
  json?: string;
  seconds: string;
  batchSize: string;
  concurrency: string;
  steadyRate: string;
  only?: string[];
  warehouseRows: string;
  warehouseBatchRows: string;
  warehouseSteadySeconds: string;
  windowerRecords: string;
  windowerAccounts: string;
  pipelineStepSeconds: string;
  pipelinePartitions: string;
  pipelineRates?: string;
  durabilitySteadyRate: string;
  durabilityRounds: string;
}

async function main(): Promise<void> {
  const options = program.opts<BenchOptions>();
  const only = options.only;
  const runs = (phase: string) => phaseRuns(only, phase);
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  };
  const stages: StageAlone[] = [];
  if (runs('ingest')) {
    const ingest = await ingestPhases(options);
    Object.assign(results, ingest.results);
    if (ingest.stage) stages.push(ingest.stage);
  }
  if (runs('windower')) {
    process.stdout.write('windower: filling streams, raw consume, windower throughput and memory... ');
    const windower = await runWindowerBench({ records: Number(options.windowerRecords), openAccounts: Number(options.windowerAccounts) });
    console.log('done');
    printWindowerBench(windower);
    results['windower'] = { ...windower, targets: { recordsPerSecond: 150_000, peakRssMiBFor1MAccounts: 512 } };
    if (windower.windowerCpuMicrosecondsPerRecord !== undefined) {
      stages.push({ stage: 'windower', microsecondsPerRecord: windower.windowerCpuMicrosecondsPerRecord, natsServerMicrosecondsPerRecord: windower.natsServerCpuMicrosecondsPerRecord });
    }
  }
  if (runs('warehouse')) {
    const warehouse = await warehousePhase(options);
    results['warehouse'] = warehouse;
    if (warehouse.loaderCpuMicrosecondsPerRecord !== undefined) {
      stages.push({ stage: 'warehouse-loader', microsecondsPerRecord: warehouse.loaderCpuMicrosecondsPerRecord, natsServerMicrosecondsPerRecord: warehouse.natsServerCpuMicrosecondsPerRecord });
    }
  }
  if (runs('billing')) {
    const billing = await runBillingBench();
    printBillingBench(billing);
    results['billing'] = billing;
    // The pipeline's store (BILLING_STORE defaults to the JetStream KV store).
    const perResult = billing.stores.find((store) => store.store === 'nats-kv')?.cpuMicrosecondsPerResult;
    if (perResult?.billing !== undefined) {
      stages.push({
        stage: 'billing-threshold',
        microsecondsPerRecord: perResult.billing,
        natsServerMicrosecondsPerRecord: perResult.natsServer,
        note: 'per window result applied ≈ per record: with sub-second spend windows (500 ms by default) the pipeline makes about one spend result per transaction',
      });
    }
  }
  if (runs('traffic')) {
    const traffic = await runTrafficBench();
    printTrafficBench(traffic);
    results['traffic'] = traffic;
  }
  if (runs('notifier')) {
    const notifier = await runNotifierBench();
    printNotifierBench(notifier);
    results['notifier'] = notifier;
  }
  let pipeline: Awaited<ReturnType<typeof runPipelineBench>> | undefined;
  if (runs('pipeline')) {
    const rates = (options.pipelineRates ?? '')
      .split(',')
      .filter((rate) => rate.trim() !== '')
      .map(Number);
    if (rates.some((rate) => !Number.isFinite(rate) || rate <= 0)) throw new Error(`--pipeline-rates: expected positive numbers, got ${options.pipelineRates}`);
    const partitions = Number(options.pipelinePartitions);
    if (!Number.isInteger(partitions) || partitions < 0 || partitions > 1024) throw new Error(`--pipeline-partitions: expected 0..1024, got ${options.pipelinePartitions}`);
    pipeline = await runPipelineBench({ stepSeconds: Number(options.pipelineStepSeconds), rates, partitions });
    printPipelineBench(pipeline);
    results['pipeline'] = pipeline;
  }
  if (runs('ingest-durability')) {
    const durability = await runIngestDurabilityBench(
      {
        seconds: Number(options.seconds),
        batchSize: Number(options.batchSize),
        concurrentBatches: Number(options.concurrency),
        steadyRecordsPerSecond: Number(options.durabilitySteadyRate),
        steadyBatchSize: 250,
        rounds: Number(options.durabilityRounds),
      },
      (text) => process.stdout.write(text),
    );
    printIngestDurabilityBench(durability);
    results['ingestDurability'] = durability;
  }
  // The block needs every stage phase, or the pipeline and at least one (it then names the stages missing from the sum).
  const stagePhasesRun = STAGE_PHASES.filter(([phase]) => runs(phase)).length;
  if (stagePhasesRun === STAGE_PHASES.length || (pipeline && stagePhasesRun > 0)) {
    const block = machineLimit({
      cores: cpus().length,
      stages,
      expectedStages: STAGE_PHASES.map(([, stage]) => stage),
      pipeline: pipeline && { highestSustainedRecordsPerSecond: pipeline.highestSustainedRecordsPerSecond, atHighestSustained: pipeline.atHighestSustained },
      notPipeline: [LOAD_GENERATOR],
    });
    console.log(`\n${machineLimitLines(block).join('\n')}`);
    results['machineLimit'] = block;
  }
  if (options.json) writeFileSync(options.json, JSON.stringify(results, null, 2));
}

// ---- warehouse phase ---------------------------------------------------------------------------
async function warehousePhase(options: BenchOptions): Promise<WarehouseBenchResults> {
  const nats = await startNats();
  try {
    const steadyRate = Number(options.steadyRate);
    const warehouse = await runWarehouseBench(
      {
        natsUrl: nats.url,
        natsPid: nats.pid,
        rows: Number(options.warehouseRows),
        recordsPerMessage: 500,
        batchMaxRows: Number(options.warehouseBatchRows),
        steadyRecordsPerSecond: steadyRate,
        steadySeconds: Number(options.warehouseSteadySeconds),
      },
      (text) => process.stdout.write(text),
    );
    console.log('\nWarehouse (chDB embedded; loader as its own process; same rows in the same run)');
    console.table({
      'raw chDB insert of the same TabSeparated bytes, same batches (rows/s)': warehouse.rawChdbInsertRowsPerSecond,
      'raw chDB insert through client.exec strings (rows/s)': warehouse.rawChdbExecRowsPerSecond,
      'warehouse-loader from a pre-filled stream (rows/s)': warehouse.loaderRowsPerSecond,
      'loader / raw': warehouse.loaderShareOfRaw,
      'target loader rows/s': 200_000,
      'loader CPU (cores)': warehouse.loaderCpuCoresUsed,
      'loader CPU per row (µs)': warehouse.loaderCpuMicrosecondsPerRecord,
      'nats-server CPU per row (µs)': warehouse.natsServerCpuMicrosecondsPerRecord,
      'loader peak RSS (MiB)': warehouse.loaderPeakRssMiB,
      'count() raw table (ms)': warehouse.countMs.raw,
      'count() FINAL view (ms)': warehouse.countMs.final,
    });
    console.log(`Freshness at a steady offered load of ${steadyRate} records/s for ${options.warehouseSteadySeconds} s`);
    console.table({
      'records published / stored': `${warehouse.steady.publishedRecords} / ${warehouse.steady.storedRecords}`,
      'ingested -> insert confirmed p50 (s)': warehouse.steady.ingestToStoredSeconds.p50,
      'ingested -> insert confirmed p99 (s)': warehouse.steady.ingestToStoredSeconds.p99,
      'ingested -> insert started (loaded_at) p50 (s)': warehouse.steady.ingestToInsertStartSeconds.p50,
      'ingested -> insert started (loaded_at) p99 (s)': warehouse.steady.ingestToInsertStartSeconds.p99,
      'target p99 (s)': 5,
    });
    return warehouse;
  } finally {
    await nats.stop();
  }
}

// ---- ingest phases -----------------------------------------------------------------------------
async function ingestPhases(options: BenchOptions): Promise<{ results: Record<string, unknown>; stage?: StageAlone }> {
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
    const natsPid = nats.pid;
    const natsCpuBefore = natsPid === undefined ? undefined : cpuSeconds(natsPid);
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
    const natsCpuAfter = natsPid === undefined ? undefined : cpuSeconds(natsPid);
    const natsCpu = natsCpuAfter === undefined || natsCpuBefore === undefined ? undefined : natsCpuAfter - natsCpuBefore;
    // Per record accepted at saturation (the rejected ones cost CPU too, but there are none in a clean run: reported below).
    const ingestorMicrosecondsPerRecord = microsecondsPerRecord(ingestorCpu, load.accepted);
    const natsMicrosecondsPerRecord = microsecondsPerRecord(natsCpu, load.accepted);
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
      rawJetStream: raw,
      ingest: {
        ...load,
        batchSize: Number(options.batchSize),
        concurrentBatches: Number(options.concurrency),
        ingestorCpuCoresUsed: Math.round((ingestorCpu / Number(options.seconds)) * 100) / 100,
        ingestorCpuMicrosecondsPerRecord: ingestorMicrosecondsPerRecord,
        natsServerCpuMicrosecondsPerRecord: natsMicrosecondsPerRecord,
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
      'ingestor CPU per record (µs)': ingestorMicrosecondsPerRecord,
      'nats-server CPU per record (µs)': natsMicrosecondsPerRecord,
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
    const stage =
      ingestorMicrosecondsPerRecord === undefined
        ? undefined
        : { stage: 'ingestor', microsecondsPerRecord: ingestorMicrosecondsPerRecord, natsServerMicrosecondsPerRecord: natsMicrosecondsPerRecord, note: `at saturation, batches of ${options.batchSize}` };
    return { results, stage };
  } finally {
    await nats.stop();
    await dir.remove();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
