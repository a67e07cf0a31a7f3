/**
 * Billing benchmark: window results applied per second by billing-threshold (a real process, the
 * embedded JetStream KV store; MongoDB when MONGODB_URI is set) and breach detection latency
 * (spend result published → alert stored in TOLL_ALERTS).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { AccountServiceClient, Alert, CustomerSpendBatch, Subjects, type CustomerSpendWindow } from '@tollstream/contracts';
import { declareTopology, provisionTopology, shardForAccount } from '@tollstream/messaging';
import { startNats, startService, tempDir, type ServiceProcess } from '@tollstream/testing';
import * as grpc from '@grpc/grpc-js';
import { readMetrics, sumOf } from '@tollstream/service-kit';
import { microsecondsPerRecord } from './machine-limit';
import { cpuSeconds, peakRssMiB, percentile } from './stats';

export interface BillingBenchOptions {
  /** Window results pre-filled in TOLL_AGG for the throughput phase. */
  results: number;
  accounts: number;
  /**
   * Results per second of event time (at most one per account and window): how fast the windower's
   * final_before moves through the backlog, so how many windows billing keeps revisable (~10 s of
   * results). 30,000 by default, the pipeline's target rate; a million accounts at one result each
   * per event second would keep every result of the backlog revisable, a density no road makes.
   */
  eventRate: number;
  /** Results per CustomerSpendBatch message (the windower packs up to 2,000). */
  resultsPerMessage: number;
  /** Breaches measured in the latency phase, and their rate. */
  breaches: number;
  breachesPerSecond: number;
}

export interface BillingStoreFigures {
  store: 'nats-kv' | 'mongodb';
  /** BILLING_ENGINE of the run: shard-state (ADR 0013) or per-result (ADR 0008). */
  engine: 'shard-state' | 'per-result';
  /** From "ready" to the first result applied (leases acquired, shards restored). */
  startupMs: number;
  results: number;
  accounts: number;
  seconds: number;
  resultsPerSecond: number;
  cpuSeconds?: number;
  /** Consumption rounds of the throughput phase (messages are grouped per account within a round). */
  rounds?: number;
  /** CPU seconds of billing-threshold and of nats-server during the throughput phase only. */
  throughputCpuSeconds?: { billing?: number; natsServer?: number };
  /**
   * CPU per window result applied (µs) of billing-threshold and of nats-server in the throughput phase.
   * With sub-second spend windows (500 ms by default) the pipeline makes about one spend result per transaction (an account
   * rarely passes twice in a second): per result ≈ per record.
   */
  cpuMicrosecondsPerResult?: { billing?: number; natsServer?: number };
  peakRssMiB?: number;
  /** What the shards held at the end of the throughput phase (shard-state): accounts, open months, revisable windows. */
  stateSize?: { accounts: number; openMonths: number; revisableWindows: number };
  breachLatencyMs: { p50: number; p90: number; p99: number; max: number; samples: number };
}

export interface BillingBenchFigures {
  options: BillingBenchOptions;
  stores: BillingStoreFigures[];
  skipped: string[];
}

// The shard engine runs through 200,000 results in about a second: a million for a measurable phase.
const shardEngine = (process.env['BILLING_ENGINE'] ?? 'shard-state') === 'shard-state';
// BENCH_BILLING_RESULTS / BENCH_BILLING_ACCOUNTS: e.g. a million accounts for the memory of the state.
const fromEnv = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const defaults: BillingBenchOptions = { results: fromEnv('BENCH_BILLING_RESULTS', shardEngine ? 1_000_000 : 200_000), accounts: fromEnv('BENCH_BILLING_ACCOUNTS', 20_000), eventRate: fromEnv('BENCH_BILLING_EVENT_RATE', 30_000), resultsPerMessage: 1_000, breaches: 300, breachesPerSecond: 100 };
const TOKEN = 'billing-bench-mobile-backend-token';
const SHARDS = 8;

function window(accountId: string, index: number, startMs: number, amountMinor: number): CustomerSpendWindow {
  const partition = index % 8;
  const endMs = startMs + 1_000;
  return {
    resultId: `spend/${accountId}/USD/p${partition}/${startMs}-${endMs}/r1`,
    accountId,
    currency: 'USD',
    windowStart: new Date(startMs),
    windowEnd: new Date(endMs),
    amountMinor,
    transactionCount: 1,
    revision: 1,
    sourcePartition: partition,
    lastOccurredAt: new Date(startMs + 500),
  };
}

/**
 * The position of the last batch published per shard: the bench writes as one windower partition
 * would, so every batch names its predecessor (the chain billing orders by, ADR 0013).
 */
const lastPositionOfShard = new Map<number, number>();

async function publishResults(js: JetStreamClient, windows: CustomerSpendWindow[], perMessage: number, tag: string): Promise<void> {
  const byShard = new Map<number, CustomerSpendWindow[]>();
  for (const result of windows) {
    const shard = shardForAccount(result.accountId, SHARDS);
    let list = byShard.get(shard);
    if (!list) byShard.set(shard, (list = []));
    list.push(result);
  }
  const pending: Array<Promise<unknown>> = [];
  for (const [shard, list] of byShard) {
    for (let start = 0; start < list.length; start += perMessage) {
      const batchId = `bench-${tag}-${shard}-${start}`;
      const previous = lastPositionOfShard.get(shard) ?? 0;
      const inputSequence = previous + 1;
      lastPositionOfShard.set(shard, inputSequence);
      const chunk = list.slice(start, start + perMessage);
      const oldestStartMs = Math.min(...chunk.map((result) => result.windowStart?.getTime() ?? Date.now()));
      const batch = CustomerSpendBatch.fromPartial({
        batchId,
        sourcePartition: 0,
        inputSequence,
        chunk: 0,
        previousInputSequence: previous,
        previousChunk: 0,
        watermark: new Date(oldestStartMs),
        // As the windower marks them: windows ending at or before watermark − allowed lateness (10 s) are final.
        finalBefore: new Date(oldestStartMs - 10_000),
        windows: chunk,
      });
      pending.push(js.publish(Subjects.customerSpendShard(shard), CustomerSpendBatch.encode(batch).finish(), { msgID: batchId }));
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
  }
  await Promise.all(pending);
}

const difference = (after: number | undefined, before: number | undefined): number | undefined =>
  after === undefined || before === undefined ? undefined : after - before;

async function metricSum(port: number, name: string): Promise<number> {
  return sumOf(await readMetrics(`http://127.0.0.1:${port}/metrics`), name) ?? 0;
}

async function setThreshold(address: string, accountId: string, amountMinor: number): Promise<void> {
  const client = new AccountServiceClient(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${TOKEN}`);
  try {
    await new Promise<void>((resolve, reject) =>
      client.setSpendingThreshold({ accountId, threshold: { amountMinor, currency: 'USD' } }, metadata, (error) => (error ? reject(error) : resolve())),
    );
  } finally {
    client.close();
  }
}

async function benchStore(store: 'nats-kv' | 'mongodb', options: BillingBenchOptions, log: (text: string) => void): Promise<BillingStoreFigures> {
  lastPositionOfShard.clear();
  const nats = await startNats();
  const dir = await tempDir('billing-bench');
  const nc = await connect({ servers: nats.url });
  let billing: ServiceProcess | undefined;
  try {
    const jsm = await jetstreamManager(nc);
    await provisionTopology(jsm, declareTopology());
    const js = jetstream(nc);
    const tokenFile = join(dir.path, 'token');
    writeFileSync(tokenFile, TOKEN);
    // Throughput: a backlog of results the service starts on (in event time this month).
    const baseMs = Date.now() - 3_600_000;
    const windows: CustomerSpendWindow[] = [];
    // Event time moves forward through the backlog as it does in the windower's output (one 1-second window per account and second).
    // Never two results of one account in one event second (they would be one window twice).
    const perEventSecond = Math.max(1, Math.min(options.accounts, options.eventRate));
    const firstWindowMs = baseMs - Math.ceil(options.results / perEventSecond) * 1_000;
    for (let i = 0; i < options.results; i++) windows.push(window(`bench-${i % options.accounts}`, i, firstWindowMs + Math.floor(i / perEventSecond) * 1_000, 100 + (i % 400)));
    log(`billing (${store}): publishing ${options.results} results for ${options.accounts} accounts, ${perEventSecond} per second of event time`);
    await publishResults(js, windows, options.resultsPerMessage, 'backlog');

    const env: NodeJS.ProcessEnv = {
      NATS_URL: nats.url,
      BILLING_GRPC_HOST: '127.0.0.1',
      ACCOUNT_API_TOKEN_FILE: tokenFile,
      BILLING_STORE: store,
      LOG_LEVEL: 'info',
    };
    // The service's defaults unless set for the bench (e.g. BILLING_ACCOUNT_CONCURRENCY=64 npm run bench -- --only billing).
    for (const name of [
      'BILLING_ENGINE',
      'BILLING_FLUSH_INTERVAL',
      'BILLING_SNAPSHOT_INTERVAL',
      'BILLING_FETCH_AHEAD',
      'BILLING_MAX_UNFLUSHED_ACCOUNTS',
      'BILLING_ACCOUNT_CONCURRENCY',
      'BILLING_MAX_MESSAGES_PER_ROUND',
      'BILLING_MAX_ROUNDS_IN_FLIGHT',
      'BILLING_KV_CACHED_ACCOUNTS',
      'BILLING_KV_CACHE_MAX_BYTES',
    ]) {
      if (process.env[name] !== undefined) env[name] = process.env[name];
    }
    if (store === 'mongodb') Object.assign(env, { MONGODB_URI: process.env['MONGODB_URI'], MONGODB_DATABASE: `billing_bench_${Date.now()}` });
    billing = await startService({ app: 'billing-threshold', grpcPortVariable: 'BILLING_GRPC_PORT', httpPortVariable: 'BILLING_HTTP_PORT', env, readyTimeoutMs: 120_000 });
    // Consumption starts just before "ready": count from the first reading after it.
    const port = billing.httpPort;
    const natsPid = nats.pid;
    const cpuAtStart = { billing: cpuSeconds(billing.pid), nats: natsPid === undefined ? undefined : cpuSeconds(natsPid) };
    const appliedAtCpuStart = await metricSum(port, 'tollstream_billing_results_total');
    // The shard engine applies nothing until it holds its shards' leases (a renew interval after
    // ready): the throughput phase starts at the first result applied, the start-up is reported apart.
    const readyAt = Date.now();
    while ((await metricSum(port, 'tollstream_billing_results_total')) === 0 && Date.now() - readyAt < 60_000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const started = Date.now();
    const startupMs = started - readyAt;
    const appliedAtStart = await metricSum(port, 'tollstream_billing_results_total');
    try {
      for (;;) {
        if ((await metricSum(port, 'tollstream_billing_results_total')) >= options.results) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } catch (error) {
      log(`billing (${store}): the service failed; its last output:\n${billing.process.output().split('\n').slice(-30).join('\n')}`);
      throw error;
    }
    // The store flush is part of the work (shard-state engine): the time until a bulk flush that
    // started after the last result was applied has completed.
    const flushesAtEnd = await metricSum(port, 'tollstream_billing_flush_duration_seconds_count');
    if (shardEngine) {
      const flushDeadline = Date.now() + 30_000;
      while ((await metricSum(port, 'tollstream_billing_flush_duration_seconds_count')) < flushesAtEnd + 2 && Date.now() < flushDeadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const seconds = (Date.now() - started) / 1000;
    const measured = options.results - appliedAtStart;
    const cpu = cpuSeconds(billing.pid);
    const rounds = await metricSum(port, 'tollstream_billing_round_messages_count');
    const metricsAtEnd = await readMetrics(`http://127.0.0.1:${port}/metrics`);
    const stateOf = (kind: string) => sumOf(metricsAtEnd, 'tollstream_billing_shard_state_size', { kind }) ?? 0;
    const stateSize = shardEngine ? { accounts: stateOf('accounts'), openMonths: stateOf('open_months'), revisableWindows: stateOf('revisable_windows') } : undefined;
    const throughputCpuSeconds = {
      billing: difference(cpu, cpuAtStart.billing),
      natsServer: natsPid === undefined ? undefined : difference(cpuSeconds(natsPid), cpuAtStart.nats),
    };
    // The CPU readings span the lease wait and the last flush too: per result applied since the first reading.
    const appliedSinceCpuStart = options.results - appliedAtCpuStart;
    const cpuMicrosecondsPerResult = {
      billing: microsecondsPerRecord(throughputCpuSeconds.billing, appliedSinceCpuStart),
      natsServer: microsecondsPerRecord(throughputCpuSeconds.natsServer, appliedSinceCpuStart),
    };
    log(`billing (${store}): ${measured} results in ${seconds.toFixed(1)} s from the first applied, the last flush included (${appliedAtStart} applied before; first result ${startupMs} ms after ready)`);

    // Latency: accounts with a threshold 1 minor unit above their total; one result each crosses it.
    const address = `127.0.0.1:${billing.grpcPort}`;
    const latencyAccounts = Array.from({ length: options.breaches }, (_, i) => `latency-${i}`);
    for (const accountId of latencyAccounts) await setThreshold(address, accountId, 1_000);
    const publishedAt = new Map<string, number>();
    const latencies: number[] = [];
    const subscription = nc.subscribe(Subjects.alert('spending'));
    const received = (async () => {
      for await (const message of subscription) {
        const accountId = Alert.decode(message.data).spendingThresholdBreached?.accountId ?? '';
        const at = publishedAt.get(accountId);
        if (at !== undefined) latencies.push(Date.now() - at);
        if (latencies.length >= options.breaches) break;
      }
    })();
    const nowMs = Date.now();
    for (const [index, accountId] of latencyAccounts.entries()) {
      const due = nowMs + (index / options.breachesPerSecond) * 1000;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      publishedAt.set(accountId, Date.now());
      await publishResults(js, [window(accountId, index, Date.now() - 2_000, 1_500)], 1, `latency-${index}`);
    }
    await Promise.race([received, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    subscription.unsubscribe();
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      store,
      engine: shardEngine ? 'shard-state' : 'per-result',
      startupMs,
      results: options.results,
      accounts: options.accounts,
      seconds,
      resultsPerSecond: Math.round(measured / seconds),
      cpuSeconds: cpu,
      throughputCpuSeconds,
      cpuMicrosecondsPerResult,
      rounds,
      peakRssMiB: peakRssMiB(billing.pid),
      stateSize,
      breachLatencyMs: {
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        max: sorted[sorted.length - 1] ?? NaN,
        samples: sorted.length,
      },
    };
  } finally {
    // A graceful stop when profiling (--cpu-prof writes its profile at exit), else a kill.
    if (process.env['TOLLSTREAM_SERVICE_NODE_ARGS']?.includes('--cpu-prof')) await billing?.stop();
    else await billing?.kill('SIGKILL');
    await nc.close();
    await nats.stop();
    await dir.remove();
  }
}

export async function runBillingBench(overrides: Partial<BillingBenchOptions> = {}, log: (text: string) => void = console.log): Promise<BillingBenchFigures> {
  const options = { ...defaults, ...overrides };
  const figures: BillingBenchFigures = { options, stores: [], skipped: [] };
  figures.stores.push(await benchStore('nats-kv', options, log));
  if (process.env['MONGODB_URI']) figures.stores.push(await benchStore('mongodb', options, log));
  else figures.skipped.push('mongodb: MONGODB_URI is not set (this machine kind cannot run a MongoDB server)');
  return figures;
}

export function printBillingBench(figures: BillingBenchFigures): void {
  console.log('\nbilling-threshold');
  for (const store of figures.stores) {
    console.log(
      `  ${store.store} (${store.engine}): ${store.resultsPerSecond.toLocaleString('en-US')} window results/s applied, store flush included ` +
        `(${store.results.toLocaleString('en-US')} results, ${store.accounts.toLocaleString('en-US')} accounts, ${figures.options.resultsPerMessage}/message, ` +
        `${store.seconds.toFixed(1)} s; process CPU ${store.cpuSeconds?.toFixed(1) ?? '?'} s incl. start-up, peak RSS ${store.peakRssMiB?.toFixed(0) ?? '?'} MiB)`,
    );
    const t = store.throughputCpuSeconds;
    if (t) {
      const share = (value: number | undefined) => (value === undefined ? '?' : `${value.toFixed(1)} s = ${Math.round((100 * value) / store.seconds)} % of a core`);
      console.log(
        `  ${store.store}: throughput phase: CPU billing-threshold ${share(t.billing)}, nats-server ${share(t.natsServer)}; ` +
          `${store.rounds ?? '?'} rounds`,
      );
    }
    const perResult = store.cpuMicrosecondsPerResult;
    if (perResult) {
      console.log(
        `  ${store.store}: CPU per window result applied: billing-threshold ${perResult.billing ?? '?'} µs, nats-server ${perResult.natsServer ?? '?'} µs ` +
          '(per result ≈ per record: with 500 ms spend windows the pipeline makes about one spend result per transaction)',
      );
    }
    const size = store.stateSize;
    if (size) {
      console.log(
        `  ${store.store}: state at the end: ${size.accounts.toLocaleString('en-US')} accounts, ${size.openMonths.toLocaleString('en-US')} open months, ` +
          `${size.revisableWindows.toLocaleString('en-US')} revisable windows (${figures.options.eventRate.toLocaleString('en-US')} results per event second at most)`,
      );
    }
    const l = store.breachLatencyMs;
    console.log(`  ${store.store}: breach detection (result published → alert) p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, max ${l.max} ms (${l.samples} breaches)`);
  }
  for (const reason of figures.skipped) console.log(`  skipped ${reason}`);
}

if (require.main === module) {
  runBillingBench()
    .then(printBillingBench)
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
