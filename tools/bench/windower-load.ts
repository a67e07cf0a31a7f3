/**
 * Windower benchmark: throughput of one windower process on a pre-filled transaction stream, beside
 * the raw JetStream consume rate of the same stream in the same run; and peak RSS with 1,000,000
 * distinct accounts in open spend windows.
 */
import { connect } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Subjects, TransactionBatch, VehicleClass, type IngestedTransaction } from '@tollstream/contracts';
import { declareTopology, partitionForStation, provisionTopology } from '@tollstream/messaging';
import { startNats, startWindower, waitFor, type NatsHandle } from '@tollstream/testing';
import { readMetrics, sumOf } from '@tollstream/service-kit';
import { microsecondsPerRecord } from './machine-limit';
import { cpuSeconds, peakRssMiB } from './stats';

const PARTITIONS = 8;
const RECORDS_PER_MESSAGE = 500;

export interface WindowerBenchFigures {
  records: number;
  rawConsumeRecordsPerSecond: number;
  rawConsumeAndDecodeRecordsPerSecond: number;
  windowerRecordsPerSecond: number;
  windowerResultsPublished: number;
  windowerCpuCoresUsed: number;
  /** CPU per record read (µs) of the windower, and of nats-server delivering them, in the throughput phase. */
  windowerCpuMicrosecondsPerRecord?: number;
  natsServerCpuMicrosecondsPerRecord?: number;
  windowerPeakRssMiB?: number;
  openWindowsAccounts: number;
  openWindowsPeakRssMiB?: number;
  openWindowsRecordsPerSecond: number;
}

interface FillShape {
  records: number;
  accounts: number;
  stations: number;
  /** Event time of the first record and the spacing between records. */
  startMs: number;
  spacingMs: number;
  /** Account of record i: i mod accounts (distinct accounts when accounts >= records). */
}

/** Publishes packed batches straight to TOLL_TX (the ingestor is measured elsewhere). */
async function fillStream(natsUrl: string, shape: FillShape): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    await provisionTopology(jsm, declareTopology({ transactionPartitions: PARTITIONS }));
    const js = jetstream(nc);
    const byPartition: IngestedTransaction[][] = Array.from({ length: PARTITIONS }, () => []);
    const pending: Array<Promise<unknown>> = [];
    let batchNumber = 0;
    const flush = async (partition: number) => {
      const transactions = byPartition[partition];
      byPartition[partition] = [];
      const batchId = `bench-${batchNumber++}`;
      pending.push(js.publish(Subjects.transactionPartition(partition), TransactionBatch.encode({ batchId, transactions }).finish(), { msgID: batchId }));
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    };
    for (let i = 0; i < shape.records; i++) {
      const stationId = `st-${String(i % shape.stations).padStart(3, '0')}`;
      const partition = partitionForStation(stationId, PARTITIONS);
      const at = new Date(shape.startMs + i * shape.spacingMs);
      byPartition[partition].push({
        transaction: {
          transactionId: `tx-${i}`,
          stationId,
          laneId: 'L1',
          tagId: `TAG-${i % shape.accounts}`,
          plate: 'AB 123',
          accountId: `acct-${i % shape.accounts}`,
          vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
          amountMinor: 250,
          currency: 'USD',
          occurredAt: at,
        },
        ingestedAt: at,
        partition,
      });
      if (byPartition[partition].length === RECORDS_PER_MESSAGE) await flush(partition);
    }
    for (let partition = 0; partition < PARTITIONS; partition++) if (byPartition[partition].length > 0) await flush(partition);
    await Promise.all(pending);
  } finally {
    await nc.close();
  }
}

/** Reads the whole stream with an ordered consumer, optionally decoding every batch. */
async function rawConsume(natsUrl: string, decode: boolean): Promise<number> {
  const nc = await connect({ servers: natsUrl });
  try {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('TOLL_TX');
    const consumer = await js.consumers.get('TOLL_TX', { deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume({ max_messages: 256 });
    let records = 0;
    let read = 0;
    const started = performance.now();
    for await (const message of messages) {
      records += decode ? TransactionBatch.decode(message.data).transactions.length : RECORDS_PER_MESSAGE;
      if (++read >= info.state.messages) break;
    }
    return Math.round(records / ((performance.now() - started) / 1000));
  } finally {
    await nc.close();
  }
}

/** A metric's value from a service's /metrics: the sum over the series whose labels match `labels`. */
async function metric(httpPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumOf(await readMetrics(`http://127.0.0.1:${httpPort}/metrics`), name, labels) ?? 0;
}

/** Runs one windower until it has read `records`; returns records/s from its first record on. */
/** The node flags the images run services with (deploy/docker/Dockerfile). */
const PRODUCTION_NODE_ARGS = '--max-semi-space-size=32';

async function runWindower(nats: NatsHandle, records: number, env: NodeJS.ProcessEnv) {
  const natsUrl = nats.url;
  // The images' flags for this windower only (a --cpu-prof given by the caller wins); set while it
  // starts and restored, so later phases (the pipeline's memory budget) are not affected.
  const callerNodeArgs = process.env['TOLLSTREAM_SERVICE_NODE_ARGS'];
  process.env['TOLLSTREAM_SERVICE_NODE_ARGS'] = callerNodeArgs ?? PRODUCTION_NODE_ARGS;
  const windower = await startWindower({ natsUrl, env: { TOLL_TX_PARTITIONS: String(PARTITIONS), ...env } }).finally(() => {
    if (callerNodeArgs === undefined) delete process.env['TOLLSTREAM_SERVICE_NODE_ARGS'];
    else process.env['TOLLSTREAM_SERVICE_NODE_ARGS'] = callerNodeArgs;
  });
  try {
    const natsPid = nats.pid;
    let firstAt = 0;
    let cpuAtFirst = 0;
    let natsCpuAtFirst: number | undefined;
    // A windower that dies (out of memory, a bug) says why at once instead of a wait until the timeout.
    const died = windower.process.exited.then((code) => {
      throw new Error(`the windower ended (code ${code}) before reading every record; its last output:\n${windower.process.output().split('\n').slice(-40).join('\n')}`);
    });
    died.catch(() => undefined);
    const readAll = waitFor(
      async () => {
        const read = await metric(windower.httpPort, 'tollstream_windower_records_total');
        if (read > 0 && firstAt === 0) {
          firstAt = performance.now();
          cpuAtFirst = cpuSeconds(windower.pid) ?? 0;
          natsCpuAtFirst = natsPid === undefined ? undefined : cpuSeconds(natsPid);
        }
        return read >= records;
      },
      { timeoutMs: 600_000, intervalMs: 50, description: 'the windower read every record' },
    );
    readAll.catch(() => undefined); // the race reports it; a dead windower's probe must not fail later unhandled
    await Promise.race([readAll, died]);
    const seconds = (performance.now() - firstAt) / 1000;
    const cpu = (cpuSeconds(windower.pid) ?? 0) - cpuAtFirst;
    const natsCpuAtEnd = natsPid === undefined ? undefined : cpuSeconds(natsPid);
    const natsCpu = natsCpuAtEnd === undefined || natsCpuAtFirst === undefined ? undefined : natsCpuAtEnd - natsCpuAtFirst;
    return {
      recordsPerSecond: Math.round(records / seconds),
      cpuCores: Math.round((cpu / seconds) * 100) / 100,
      cpuMicrosecondsPerRecord: microsecondsPerRecord(cpu, records),
      natsServerCpuMicrosecondsPerRecord: microsecondsPerRecord(natsCpu, records),
      results: await metric(windower.httpPort, 'tollstream_windower_results_total'),
      openSpendWindows: await metric(windower.httpPort, 'tollstream_windower_open_windows', { aggregate: 'customer_spend' }),
      peakRssMiB: peakRssMiB(windower.pid),
    };
  } finally {
    await windower.stop();
  }
}

export async function runWindowerBench(options: { records: number; openAccounts: number }): Promise<WindowerBenchFigures> {
  // Throughput: 100k accounts, 64 stations, event time advancing as it would at the target rate
  // (150,000 records per second of event time): 1-second spend windows close every 150,000 records,
  // nearly one result per record (an account rarely passes twice in a second).
  const throughputNats = await startNats();
  let throughput: Awaited<ReturnType<typeof runWindower>>;
  let rawConsumeRecordsPerSecond: number;
  let rawConsumeAndDecodeRecordsPerSecond: number;
  try {
    await fillStream(throughputNats.url, {
      records: options.records,
      accounts: 100_000,
      stations: 64,
      startMs: Date.now() - 3 * 3600_000,
      spacingMs: 1_000 / 150_000,
    });
    rawConsumeRecordsPerSecond = await rawConsume(throughputNats.url, false);
    rawConsumeAndDecodeRecordsPerSecond = await rawConsume(throughputNats.url, true);
    throughput = await runWindower(throughputNats, options.records, {});
  } finally {
    await throughputNats.stop();
  }

  // Memory: every record a distinct account, all inside one 10-minute window that stays open
  // (event times ahead of the log clock, so the idle rule does not close it).
  const memoryNats = await startNats();
  let memory: Awaited<ReturnType<typeof runWindower>>;
  try {
    const windowStart = Math.ceil((Date.now() + 3600_000) / 600_000) * 600_000;
    await fillStream(memoryNats.url, {
      records: options.openAccounts,
      accounts: options.openAccounts,
      stations: 64,
      startMs: windowStart,
      spacingMs: 300_000 / options.openAccounts,
    });
    memory = await runWindower(memoryNats, options.openAccounts, { SPEND_WINDOW: 'tumbling:10m' });
  } finally {
    await memoryNats.stop();
  }
  return {
    records: options.records,
    rawConsumeRecordsPerSecond,
    rawConsumeAndDecodeRecordsPerSecond,
    windowerRecordsPerSecond: throughput.recordsPerSecond,
    windowerResultsPublished: throughput.results,
    windowerCpuCoresUsed: throughput.cpuCores,
    windowerCpuMicrosecondsPerRecord: throughput.cpuMicrosecondsPerRecord,
    natsServerCpuMicrosecondsPerRecord: throughput.natsServerCpuMicrosecondsPerRecord,
    windowerPeakRssMiB: throughput.peakRssMiB === undefined ? undefined : Math.round(throughput.peakRssMiB),
    openWindowsAccounts: memory.openSpendWindows,
    openWindowsPeakRssMiB: memory.peakRssMiB === undefined ? undefined : Math.round(memory.peakRssMiB),
    openWindowsRecordsPerSecond: memory.recordsPerSecond,
  };
}

export function printWindowerBench(figures: WindowerBenchFigures): void {
  console.log('Windower (one process) on a pre-filled stream, beside raw JetStream consumption of the same stream');
  console.table({
    'raw consume, ordered consumer (records/s)': figures.rawConsumeRecordsPerSecond,
    'raw consume + protobuf decode (records/s)': figures.rawConsumeAndDecodeRecordsPerSecond,
    'windower (records/s)': figures.windowerRecordsPerSecond,
    'target (records/s)': 150_000,
    'window results published': figures.windowerResultsPublished,
    'windower CPU (cores)': figures.windowerCpuCoresUsed,
    'windower CPU per record (µs)': figures.windowerCpuMicrosecondsPerRecord,
    'nats-server CPU per record (µs)': figures.natsServerCpuMicrosecondsPerRecord,
    'windower peak RSS (MiB)': figures.windowerPeakRssMiB,
  });
  console.log('Windower holding 1,000,000 distinct accounts in open spend windows (tumbling:10m)');
  console.table({
    'open spend windows': figures.openWindowsAccounts,
    'peak RSS (MiB)': figures.openWindowsPeakRssMiB,
    'target peak RSS (MiB)': 512,
    'records/s while filling': figures.openWindowsRecordsPerSecond,
  });
}
