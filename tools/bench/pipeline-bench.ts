/**
 * End-to-end pipeline bench (npm run bench -- --only pipeline): nats-server and the six services as
 * separate processes (each configured by env only, node flags and nats-server's GOMEMLIMIT from the local memory budget, deploy/local/memory.json),
 * the load generator in this process at an exact offered rate with live event time.
 *
 * Steps of rising offered rate, each held for --pipeline-step-seconds; a step is sustained when the
 * ingestor acknowledged ≈ the offered rate and every consumer's lag stayed bounded and did not grow.
 * Measured per step: spending-alert latency (ingest acknowledgement of the breaching record →
 * notification received by a SubscribeNotifications subscriber), traffic-alert delay after slot close
 * (1-minute slots), warehouse freshness (the loader's ingested → insert confirmed histogram), CPU and
 * peak RSS of every process, consumer lags; raw JetStream rates of the same run beside them.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { jetstreamManager, type ConsumerInfo, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AccountServiceClient,
  Alert,
  NotificationServiceClient,
  Streams,
  Subjects,
  TrafficCondition,
  TrafficReferenceServiceClient,
  type Notification,
  type SlotBand,
} from '@tollstream/contracts';
import { localMemoryBudget, repositoryRoot, serviceNodeArgs, startIngestor, startNats, startService, startWindower, tempDir, type NatsHandle, type ServiceProcess, type TempDirHandle } from '@tollstream/testing';
import { checkEncoder, IngestSender, RequestEncoder, type RecordSpec } from './pipeline-load';
import { measureRawJetStream, type RawJetStreamFigures } from './raw-jetstream';
import { histogramBuckets, readMetrics, sumOf, type MetricSample } from '@tollstream/service-kit';
import { stepMicrosecondsPerRecord } from './machine-limit';
import { cpuSeconds, histogramQuantile, peakRssMiB, percentile } from './stats';

export interface PipelineBenchOptions {
  stepSeconds: number;
  /** Explicit offered rates (records/s); empty: the rate search. */
  rates: number[];
  /** Distinct accounts of the regular traffic. */
  accounts: number;
  /** Spending-threshold breaches per step. */
  breachesPerStep: number;
  /** Seconds allowed after a step for lags to drain before the next one. */
  drainSeconds: number;
  /**
   * TOLL_TX partitions and spend shards of every service (0: the services' own default, 8, or what
   * TOLL_TX_PARTITIONS / SPEND_SHARDS say). Fewer, larger messages per record on a small machine.
   */
  partitions: number;
}

export const pipelineDefaults: PipelineBenchOptions = { stepSeconds: 60, rates: [], accounts: 200_000, breachesPerStep: 60, drainSeconds: 90, partitions: 0 };

const STATION_GROUPS = 8;
const STATIONS_PER_GROUP = 8;
const SILENT_STATIONS = 4;
const LOW_STATIONS = 4;
/** A low station sends one record this often: ~6 per 1-minute slot, below the band minimum of 20. */
const LOW_STATION_INTERVAL_MS = 10_000;
const BAND_MINIMUM = 20;
const THRESHOLD_MINOR = 1_000;
const BREACH_PART_MINOR = 600;
/** The second record of a breach account (the breaching one) follows the first after this. */
const BREACH_GAP_MS = 1_500;
/** Consumer lag bound: this many seconds of the stream's input (and at least MIN_LAG_BOUND). */
const LAG_BOUND_SECONDS = 5;
const MIN_LAG_BOUND = 500;
const MAX_BATCHES_IN_FLIGHT = 256;
const API_TOKEN = 'pipeline-bench-api-token-0123456789';

/** The services' node flags of this run (as startService applies them), reported beside the figures. */
function serviceNodeArgsText(): string {
  return PIPELINE_APPS.map((app) => `${app}: ${serviceNodeArgs(app).join(' ') || '(none)'}`).join('; ');
}

/** The bench process's name among the pipeline's processes (it sends the load; not part of the platform). */
export const LOAD_GENERATOR = 'bench (load generator)';
const PIPELINE_APPS = ['ingestor', 'windower', 'billing-threshold', 'traffic-anomaly', 'warehouse-loader', 'notifier'];
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const round = (value: number, digits = 0) => (Number.isFinite(value) ? Math.round(value * 10 ** digits) / 10 ** digits : Number.NaN);

export interface LagSeries {
  /** 'records' (windower: acknowledged − read) or 'messages' (durable consumer: num_pending + num_ack_pending). */
  unit: 'records' | 'messages';
  bound: number;
  /** Lag at the end of the load in seconds of the consumer's input (lag / input rate of the step). */
  secondsBehindAtEnd: number;
  atMid: number;
  atEnd: number;
  max: number;
  /** After the load stopped: seconds until this consumer caught up (undefined: not within the drain time). */
  drainedAfterSeconds?: number;
}

export interface ProcessFigures {
  pid: number;
  cpuCores: number;
  /** CPU per record acknowledged in the step (µs): cores used / acknowledged records per second. */
  cpuMicrosecondsPerRecord?: number;
  /** Highest VmRSS sampled during the step (every second). */
  peakRssMiB: number;
  /** VmHWM at the end of the step: the process's lifetime peak. */
  lifetimePeakRssMiB: number;
}

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
  samples: number;
}

export interface PipelineStep {
  offeredRecordsPerSecond: number;
  seconds: number;
  batchSize: number;
  sentRecordsPerSecond: number;
  acknowledgedRecordsPerSecond: number;
  notAccepted: number;
  sendErrors: number;
  /** Times the generator had to wait for the ingestor (MAX_BATCHES_IN_FLIGHT unanswered batches). */
  inFlightCapHit: number;
  batchLatencyMs: { p50: number; p99: number };
  sustained: boolean;
  reasons: string[];
  /** Consumer lags left by the previous step that had not drained when this one started (empty: none). */
  backlogAtStart: Record<string, number>;
  /** Stage that fell behind (largest lag relative to its bound), when the step was not sustained. */
  limitingStage?: string;
  lags: Record<string, LagSeries>;
  /** Window results published by the windower (spend and traffic, first results and amendments) per second of the step. */
  windowResultsPerSecond: number;
  /** Window results applied by billing-threshold per second of the step (its input is the spend part of the above). */
  billingResultsAppliedPerSecond: number;
  streamMessagesPerSecond: Record<string, number>;
  spendingAlertLatencyMs: Percentiles & { expected: number };
  /**
   * Where the spending alerts' latency went: acknowledgement → the windower's spend batch stored
   * (the alert's raised_at: window close, out-of-orderness, emission), → the alert on its subject
   * (billing applied the batch and published it), → the notification created (the notifier stored
   * it), → the app receives it.
   */
  spendingAlertStagesMs: { windower: Percentiles; billing: Percentiles; notifier: Percentiles; delivery: Percentiles };
  trafficAlertDelayMs: Percentiles;
  warehouseFreshnessSeconds: { p50: number; p99: number; messages: number; gaugeP50: number; gaugeP99: number };
  windowerEmitDelaySeconds: { p50: number; p99: number };
  processes: Record<string, ProcessFigures>;
  /** Sum of every process's peak RSS, the load generator included. */
  totalPeakRssMiB: number;
  /** The pipeline alone (nats-server and the six services; not the load generator): highest sum of simultaneous RSS samples, and sum of their peaks. */
  pipelineRssMiB: { peakOfSum: number; sumOfPeaks: number };
}

export interface PipelineBenchFigures {
  options: PipelineBenchOptions;
  nodeArgs: string;
  /** The topology and spend windowing the services ran with (as they read them from the environment). */
  settings: string;
  rawJetStream: RawJetStreamFigures;
  steps: PipelineStep[];
  highestSustainedRecordsPerSecond?: number;
  atHighestSustained?: PipelineStep;
  at50k?: PipelineStep;
  /** The stage that fell behind in the lowest-rate step that was not sustained. */
  limitingStage?: { offeredRecordsPerSecond: number; stage: string; evidence: string[]; cpuCores: Record<string, number> };
  targets: { recordsPerSecond: number; spendingAlertP99Ms: number; warehouseFreshnessP99Seconds: number; totalRssMiB: number };
}

// ---- /proc and /metrics ------------------------------------------------------------------------

function rssMiB(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** How long a service under load may take to answer /metrics before the step fails naming it (its event loop is starved). */
const METRICS_TIMEOUT_MS = 30_000;
const servicesByHttpPort = new Map<number, string>();
const readPort = async (port: number): Promise<MetricSample[]> => {
  try {
    return await readMetrics(`http://127.0.0.1:${port}/metrics`, METRICS_TIMEOUT_MS);
  } catch (error) {
    const service = servicesByHttpPort.get(port) ?? `the service on port ${port}`;
    throw new Error(`${service} did not answer /metrics within ${METRICS_TIMEOUT_MS / 1000} s (its event loop is starved at this rate): ${error instanceof Error ? error.message : String(error)}`);
  }
};
const metricTotal = (samples: readonly MetricSample[], name: string): number => sumOf(samples, name) ?? 0;

function stats(values: number[], digits = 0): Percentiles {
  return { p50: round(percentile(values, 50), digits), p99: round(percentile(values, 99), digits), max: values.length ? round(Math.max(...values), digits) : Number.NaN, samples: values.length };
}

// ---- the platform -------------------------------------------------------------------------------

interface Platform {
  nats: NatsHandle;
  natsPid?: number;
  nc: NatsConnection;
  jsm: JetStreamManager;
  dir: TempDirHandle;
  services: Record<string, ServiceProcess>;
  stationTokens: Array<{ token: string; stationIds: string[] }>;
  lowStationToken: string;
  silentStations: string[];
  lowStations: string[];
}

/** What the services read for partitions, shards and spend windows (the environment, else their defaults). */
function settingsText(): string {
  const env = (name: string, fallback: string) => `${name}=${process.env[name] ?? `${fallback} (default)`}`;
  return [env('TOLL_TX_PARTITIONS', '8'), env('SPEND_SHARDS', '8'), env('SPEND_WINDOW', 'tumbling:500ms'), env('SPEND_OUT_OF_ORDERNESS', '500ms')].join(', ');
}

async function startPlatform(log: (text: string) => void, partitions: number): Promise<{ platform: Platform; raw: RawJetStreamFigures }> {
  if (partitions > 0) {
    // Every process of the run (services and this bench) reads the same topology.
    process.env['TOLL_TX_PARTITIONS'] = String(partitions);
    process.env['SPEND_SHARDS'] = String(partitions);
  }
  // The local pipeline's memory budget (as npm start runs it) unless TOLLSTREAM_SERVICE_NODE_ARGS overrides the node flags.
  process.env['TOLLSTREAM_SERVICE_MEMORY'] ??= 'local';
  // As in production and npm start: the built bundles (tsx from source costs ~60 MiB per process).
  if ((process.env['TOLLSTREAM_SERVICE_RUNTIME'] ??= 'built') === 'built') {
    log('pipeline: building the services (nx build; cached when unchanged)...');
    execFileSync('npx', ['nx', 'run-many', '-t', 'build', '-p', ...PIPELINE_APPS, '--output-style=static'], { cwd: repositoryRoot, stdio: 'ignore' });
  }
  process.env['GOMEMLIMIT'] ??= localMemoryBudget().natsServerGoMemoryLimit;
  const nats = await startNats();
  const dir = await tempDir('pipeline-bench');
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  log('pipeline: raw JetStream rates (same nats-server, before the services start)...');
  const raw = await measureRawJetStream(nats.url);
  log(`pipeline: raw publish ${raw.perMessagePublishPerSecond} msg/s per message, ${raw.packedRecordsPublishPerSecond} records/s packed 500/message; pull consume ${raw.consumePerSecond} msg/s`);

  const stationTokens = Array.from({ length: STATION_GROUPS }, (_, g) => ({
    token: `pipeline-bench-station-token-${String(g).padStart(4, '0')}`,
    stationIds: Array.from({ length: STATIONS_PER_GROUP }, (_, s) => `st-${String(g * STATIONS_PER_GROUP + s).padStart(3, '0')}`),
  }));
  const silentStations = Array.from({ length: SILENT_STATIONS }, (_, i) => `st-silent-${i}`);
  const lowStations = Array.from({ length: LOW_STATIONS }, (_, i) => `st-low-${i}`);
  const lowStationToken = 'pipeline-bench-station-token-low-0000';
  const credentialsFile = join(dir.path, 'stations.json');
  writeFileSync(
    credentialsFile,
    JSON.stringify({
      stations: [
        ...stationTokens.map(({ token, stationIds }, g) => ({ name: `group-${g}`, token, stationIds })),
        { name: 'low', token: lowStationToken, stationIds: [...lowStations, ...silentStations] },
      ],
    }),
  );
  const tokenFile = join(dir.path, 'api-token');
  writeFileSync(tokenFile, API_TOKEN);
  const common = { NATS_URL: nats.url, LOG_LEVEL: 'info' };

  log(`pipeline: starting ingestor, windower, billing-threshold, traffic-anomaly, warehouse-loader, notifier (${process.env['TOLLSTREAM_SERVICE_RUNTIME'] === 'built' ? 'built bundles' : 'from source with tsx'}; ${settingsText()}; node ${serviceNodeArgsText()}; nats-server GOMEMLIMIT=${process.env['GOMEMLIMIT'] ?? ''})...`);
  const services: Record<string, ServiceProcess> = {};
  try {
    services['ingestor'] = await startIngestor({ natsUrl: nats.url, credentialsFile });
    const [windower, billing, traffic, warehouse, notifier] = await Promise.all([
      startWindower({ natsUrl: nats.url, env: { TRAFFIC_WINDOW: 'tumbling:1m' }, readyTimeoutMs: 120_000 }),
      startService({
        app: 'billing-threshold',
        grpcPortVariable: 'BILLING_GRPC_PORT',
        httpPortVariable: 'BILLING_HTTP_PORT',
        env: { ...common, BILLING_GRPC_HOST: '127.0.0.1', ACCOUNT_API_TOKEN_FILE: tokenFile },
        readyTimeoutMs: 120_000,
      }),
      startService({
        app: 'traffic-anomaly',
        grpcPortVariable: 'TRAFFIC_GRPC_PORT',
        httpPortVariable: 'TRAFFIC_HTTP_PORT',
        env: { ...common, TRAFFIC_GRPC_HOST: '127.0.0.1', TRAFFIC_API_TOKEN_FILE: tokenFile, TRAFFIC_WINDOW: 'tumbling:1m', TRAFFIC_MAX_CATCH_UP: '5m', TRAFFIC_REFERENCE_REFRESH: '2s' },
        readyTimeoutMs: 120_000,
      }),
      startService({
        app: 'warehouse-loader',
        httpPortVariable: 'WAREHOUSE_HTTP_PORT',
        env: { ...common, WAREHOUSE_DATA_DIR: join(dir.path, 'warehouse') },
        readyTimeoutMs: 120_000,
      }),
      startService({
        app: 'notifier',
        grpcPortVariable: 'NOTIFIER_GRPC_PORT',
        httpPortVariable: 'NOTIFIER_HTTP_PORT',
        env: { ...common, NOTIFIER_GRPC_HOST: '127.0.0.1', NOTIFICATION_API_TOKEN_FILE: tokenFile },
        readyTimeoutMs: 120_000,
      }),
    ]);
    Object.assign(services, { windower, 'billing-threshold': billing, 'traffic-anomaly': traffic, 'warehouse-loader': warehouse, notifier });
    for (const [name, service] of Object.entries(services)) servicesByHttpPort.set(service.httpPort, name);
  } catch (error) {
    await Promise.all(Object.values(services).map((service) => service.kill('SIGKILL')));
    throw error;
  }
  return {
    platform: { nats, natsPid: nats.pid, nc, jsm, dir, services, stationTokens, lowStationToken, silentStations, lowStations },
    raw,
  };
}

async function stopPlatform(platform: Platform): Promise<void> {
  await Promise.all(Object.values(platform.services).map((service) => service.stop().catch(() => service.kill('SIGKILL'))));
  await platform.nc.close();
  await platform.nats.stop();
  await platform.dir.remove();
}

function metadataFor(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${API_TOKEN}`);
  return metadata;
}

/** Reference bands (1-minute slots, today and tomorrow UTC) that silent and low stations violate every slot. */
async function loadReferences(platform: Platform): Promise<void> {
  const client = new TrafficReferenceServiceClient(`127.0.0.1:${platform.services['traffic-anomaly'].grpcPort}`, grpc.credentials.createInsecure());
  const now = new Date();
  const isoWeekday = (date: Date) => (date.getUTCDay() === 0 ? 7 : date.getUTCDay());
  const bands: SlotBand[] = [];
  for (const day of [now, new Date(now.getTime() + 86_400_000)]) {
    for (let minute = 0; minute < 1440; minute++) bands.push({ weekday: isoWeekday(day), startMinute: minute, minimum: BAND_MINIMUM, maximum: undefined });
  }
  const effectiveFrom = new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  try {
    for (const stationId of [...platform.silentStations, ...platform.lowStations]) {
      await new Promise<void>((resolve, reject) =>
        client.putStationReference({ stationId, effectiveFrom, timeZone: 'UTC', slotMinutes: 1, bands, dryRun: false }, metadataFor(), (error) => (error ? reject(error) : resolve())),
      );
    }
  } finally {
    client.close();
  }
}

// ---- lag sampling ------------------------------------------------------------------------------

interface Sample {
  atMs: number;
  acknowledged: number;
  windowerRecords: number;
  durableLags: Map<string, number>;
  streamLastSeq: Map<string, number>;
  rss: Map<string, number>;
  warehouseFreshnessSeconds: number;
}

async function durableLags(jsm: JetStreamManager): Promise<{ lags: Map<string, number>; lastSeq: Map<string, number> }> {
  const lags = new Map<string, number>();
  const lastSeq = new Map<string, number>();
  for (const stream of [Streams.transactions, Streams.aggregates, Streams.alerts]) {
    lastSeq.set(stream, (await jsm.streams.info(stream)).state.last_seq);
    const consumers: ConsumerInfo[] = await jsm.consumers.list(stream).next();
    for (const info of consumers) {
      if (!info.config.durable_name) continue; // ordered consumers (the windower's) are compared by records below
      lags.set(`${stream}/${info.name}`, info.num_pending + info.num_ack_pending);
    }
  }
  return { lags, lastSeq };
}

// ---- one step ----------------------------------------------------------------------------------

interface RunState {
  acknowledged: number;
  notAccepted: number;
  sendErrors: number;
  stepCounter: number;
  runId: string;
  trafficAlerts: Array<{ receivedAt: number; slotEndMs: number; stationId: string }>;
  /** When each spending alert reached the broker (its subject, seen by the bench), by account. */
  spendingAlertSeenAt: Map<string, number>;
}

function processPids(platform: Platform): Array<[string, number]> {
  const pids: Array<[string, number]> = Object.entries(platform.services).map(([name, service]) => [name, service.pid]);
  if (platform.natsPid !== undefined) pids.push(['nats-server', platform.natsPid]);
  pids.push([LOAD_GENERATOR, process.pid]);
  return pids;
}

async function sample(platform: Platform, state: RunState, windowerHttp: number, loaderHttp: number): Promise<Sample> {
  const [windowerText, loaderText, billingText, durable] = await Promise.all([
    readPort(windowerHttp),
    readPort(loaderHttp),
    readPort(platform.services['billing-threshold'].httpPort),
    durableLags(platform.jsm),
  ]);
  // Billing reads its spend shards with ordered consumers: its lag is what it reports per shard.
  durable.lags.set(BILLING_LAG, metricTotal(billingText, 'tollstream_billing_shard_pending_records'));
  const rss = new Map<string, number>();
  for (const [name, pid] of processPids(platform)) rss.set(name, rssMiB(pid) ?? Number.NaN);
  return {
    atMs: Date.now(),
    acknowledged: state.acknowledged,
    windowerRecords: metricTotal(windowerText, 'tollstream_windower_records_total'),
    durableLags: durable.lags,
    streamLastSeq: durable.lastSeq,
    rss,
    warehouseFreshnessSeconds: metricTotal(loaderText, 'tollstream_warehouse_freshness_seconds'),
  };
}

const BILLING_LAG = `${Streams.aggregates}/billing-threshold (spend shards)`;
const lagsOf = (s: Sample): Map<string, number> => new Map([['windower (ordered consumers)', s.acknowledged - s.windowerRecords], ...s.durableLags]);

async function runStep(platform: Platform, state: RunState, rate: number, options: PipelineBenchOptions, log: (text: string) => void): Promise<PipelineStep> {
  const step = state.stepCounter++;
  const { services } = platform;
  const address = `127.0.0.1:${services['ingestor'].grpcPort}`;
  const windowerHttp = services['windower'].httpPort;
  const loaderHttp = services['warehouse-loader'].httpPort;
  const batchSize = Math.max(50, Math.min(1_000, Math.round(rate / 100 / 50) * 50));
  const intervalMs = (batchSize / rate) * 1000;
  const seconds = options.stepSeconds;

  // Spending breaches: fresh accounts with a threshold; a first record below it, the breaching one BREACH_GAP_MS later.
  const breachAccounts = Array.from({ length: options.breachesPerStep }, (_, i) => `brk-${state.runId}-${step}-${i}`);
  const accountClient = new AccountServiceClient(`127.0.0.1:${services['billing-threshold'].grpcPort}`, grpc.credentials.createInsecure());
  for (const accountId of breachAccounts) {
    await new Promise<void>((resolve, reject) =>
      accountClient.setSpendingThreshold({ accountId, threshold: { amountMinor: THRESHOLD_MINOR, currency: 'USD' } }, metadataFor(), (error) => (error ? reject(error) : resolve())),
    );
  }
  accountClient.close();
  const notifierClient = new NotificationServiceClient(`127.0.0.1:${services['notifier'].grpcPort}`, grpc.credentials.createInsecure());
  const notifiedAt = new Map<string, number>();
  const alertTimes = new Map<string, { raisedAtMs: number; createdAtMs: number }>();
  const subscriptions = breachAccounts.map((accountId) => {
    const call = notifierClient.subscribeNotifications({ accountId, afterNotificationId: '' }, metadataFor());
    call.on('data', (response: { notification?: Notification }) => {
      const notification = response.notification;
      if (notification && !notifiedAt.has(notification.accountId)) {
        notifiedAt.set(notification.accountId, Date.now());
        alertTimes.set(notification.accountId, { raisedAtMs: notification.alert?.raisedAt?.getTime() ?? Number.NaN, createdAtMs: notification.createdAt?.getTime() ?? Number.NaN });
      }
    });
    call.on('error', () => undefined);
    return call;
  });
  await sleep(300);
  const breachSpan = Math.max(1_000, (seconds - 5) * 1000 - BREACH_GAP_MS);
  // Batch index → breach records it carries (first part or breaching part).
  const breachAt = new Map<number, Array<{ accountId: string; breaching: boolean }>>();
  const addBreach = (batch: number, entry: { accountId: string; breaching: boolean }) => breachAt.set(batch, [...(breachAt.get(batch) ?? []), entry]);
  breachAccounts.forEach((accountId, i) => {
    const firstMs = ((i + 0.5) / breachAccounts.length) * breachSpan;
    addBreach(Math.floor(firstMs / intervalMs), { accountId, breaching: false });
    addBreach(Math.floor((firstMs + BREACH_GAP_MS) / intervalMs), { accountId, breaching: true });
  });
  const acknowledgedAt = new Map<string, number>();

  const sender = new IngestSender(address, 4);
  const encoder = new RequestEncoder();
  const groupMetadata = platform.stationTokens.map(({ token }) => IngestSender.metadataFor(token));
  const lowMetadata = IngestSender.metadataFor(platform.lowStationToken);
  const records: RecordSpec[] = Array.from({ length: batchSize }, () => ({ transactionId: '', stationId: '', laneId: '', tagId: '', accountId: '', amountMinor: 0 }));
  const latencies: number[] = [];
  let sent = 0;
  let serial = 0;
  /** Times the generator waited because MAX_BATCHES_IN_FLIGHT requests were unanswered (the ingestor is behind). */
  let inFlightCapHit = 0;

  // A previous step that was not sustained leaves a backlog: let it drain first (bounded), and say so.
  const backlogDeadline = Date.now() + options.drainSeconds * 4 * 1000;
  let backlog = lagsOf(await sample(platform, state, windowerHttp, loaderHttp));
  while ([...backlog.values()].some((lag) => lag > MIN_LAG_BOUND / 5) && Date.now() < backlogDeadline) {
    await sleep(1_000);
    backlog = lagsOf(await sample(platform, state, windowerHttp, loaderHttp));
  }
  const backlogAtStart = Object.fromEntries([...backlog].filter(([, lag]) => lag > MIN_LAG_BOUND / 5));
  if (Object.keys(backlogAtStart).length > 0) log(`pipeline: step ${rate}/s starts with a backlog left by the previous step: ${JSON.stringify(backlogAtStart)}`);
  const before = await sample(platform, state, windowerHttp, loaderHttp);
  const notAcceptedBefore = state.notAccepted;
  const sendErrorsBefore = state.sendErrors;
  const freshnessBefore = histogramBuckets(await readPort(loaderHttp), 'tollstream_warehouse_ingest_to_stored_seconds');
  const windowerTextBefore = await readPort(windowerHttp);
  const emitBefore = histogramBuckets(windowerTextBefore, 'tollstream_windower_emit_delay_seconds');
  const resultsBefore = metricTotal(windowerTextBefore, 'tollstream_windower_results_total');
  const billingHttp = services['billing-threshold'].httpPort;
  const appliedBefore = metricTotal(await readPort(billingHttp), 'tollstream_billing_results_total');
  const cpuBefore = new Map(processPids(platform).map(([name, pid]) => [name, cpuSeconds(pid) ?? Number.NaN]));
  const samples: Sample[] = [before];
  const started = performance.now();
  const startedWall = Date.now();
  const deadline = started + seconds * 1000;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sleep(1_000);
      if (sampling) samples.push(await sample(platform, state, windowerHttp, loaderHttp));
    }
  })();
  const lowTimer = setInterval(() => {
    const specs = platform.lowStations.map((stationId, i) => ({ transactionId: `${state.runId}-low-${serial++}`, stationId, laneId: 'L1', tagId: `TAG-LOW-${i}`, accountId: `acct-low-${i}`, amountMinor: 200 }));
    sender.send(encoder.encode(specs, Date.now()), lowMetadata).then(
      (result) => {
        state.acknowledged += result.accepted;
        state.notAccepted += result.notAccepted;
      },
      () => state.sendErrors++,
    );
  }, LOW_STATION_INTERVAL_MS);

  const inFlight = new Set<Promise<void>>();
  const tag = `${state.runId}-${step}`;
  for (let i = 0; performance.now() < deadline; i++) {
    const due = started + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (inFlight.size >= MAX_BATCHES_IN_FLIGHT) {
      inFlightCapHit++;
      await Promise.race(inFlight);
    }
    const group = i % STATION_GROUPS;
    const stations = platform.stationTokens[group].stationIds;
    for (let k = 0; k < batchSize; k++) {
      const n = serial++;
      const spec = records[k];
      spec.transactionId = `${tag}-${n}`;
      spec.stationId = stations[n % stations.length];
      spec.laneId = `L${n % 6}`;
      const account = (n * 7_919) % options.accounts;
      spec.accountId = `acct-${account}`;
      spec.tagId = `TAG-${account}`;
      spec.amountMinor = 150 + (n % 500);
    }
    const breaches = breachAt.get(i) ?? [];
    const specs = breaches.length === 0 ? records : records.slice();
    breaches.forEach((breach, k) => {
      specs[k] = { ...specs[k], accountId: breach.accountId, tagId: `TAG-${breach.accountId}`, amountMinor: BREACH_PART_MINOR };
    });
    const request = encoder.encode(specs, Date.now());
    const sentAt = performance.now();
    sent += batchSize;
    const call = sender
      .send(request, groupMetadata[group])
      .then(
        (result) => {
          const ackWall = Date.now();
          latencies.push(performance.now() - sentAt);
          state.acknowledged += result.accepted;
          state.notAccepted += result.notAccepted;
          for (const breach of breaches) if (breach.breaching) acknowledgedAt.set(breach.accountId, ackWall);
        },
        () => {
          state.sendErrors++;
        },
      )
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  }
  const loadSeconds = (performance.now() - started) / 1000;
  clearInterval(lowTimer);
  await Promise.all(inFlight);
  const acknowledgedInStep = state.acknowledged - before.acknowledged;
  sampling = false;
  await sampler;
  const end = samples[samples.length - 1];
  const cpu = new Map(processPids(platform).map(([name, pid]) => [name, ((cpuSeconds(pid) ?? Number.NaN) - (cpuBefore.get(name) ?? Number.NaN)) / loadSeconds]));
  const elapsedSeconds = (performance.now() - started) / 1000;
  const windowResultsPerSecond = Math.round((metricTotal(await readPort(windowerHttp), 'tollstream_windower_results_total') - resultsBefore) / elapsedSeconds);
  const billingAppliedPerSecond = Math.round((metricTotal(await readPort(billingHttp), 'tollstream_billing_results_total') - appliedBefore) / elapsedSeconds);
  const endWall = Date.now();

  // Lags during the step.
  const mid = samples.reduce((best, s) => (Math.abs(s.atMs - (startedWall + endWall) / 2) < Math.abs(best.atMs - (startedWall + endWall) / 2) ? s : best), before);
  const streamRates = new Map<string, number>();
  for (const [stream, last] of end.streamLastSeq) streamRates.set(stream, (last - (before.streamLastSeq.get(stream) ?? 0)) / ((end.atMs - before.atMs) / 1000));
  const lags: Record<string, LagSeries> = {};
  const reasons: string[] = [];
  let worst: { name: string; score: number } | undefined;
  for (const [name, atEnd] of lagsOf(end)) {
    const isWindower = name.startsWith('windower');
    const streamRate = isWindower ? rate : (streamRates.get(name.split('/')[0]) ?? 0);
    const bound = Math.max(MIN_LAG_BOUND, Math.round(streamRate * LAG_BOUND_SECONDS));
    const series = samples.map((s) => lagsOf(s).get(name) ?? 0);
    const atMid = lagsOf(mid).get(name) ?? 0;
    const max = Math.max(...series);
    lags[name] = { unit: isWindower ? 'records' : 'messages', bound, secondsBehindAtEnd: streamRate > 0 ? round(atEnd / streamRate, 1) : 0, atMid, atEnd, max };
    const growing = atEnd - atMid > bound / 4;
    const score = Math.max(atEnd, max) / bound + (growing ? 1 : 0);
    if (max > bound || growing) {
      reasons.push(`${name}: lag ${growing ? `grew ${atMid} → ${atEnd}` : `reached ${max}`} ${isWindower ? 'records' : 'messages'} (bound ${bound})`);
      if (!worst || score > worst.score) worst = { name, score };
    }
  }
  const acknowledgedPerSecond = acknowledgedInStep / loadSeconds;
  if (acknowledgedPerSecond < rate * 0.97) {
    reasons.unshift(`ingestor acknowledged ${Math.round(acknowledgedPerSecond)} of ${rate} records/s offered (sent ${Math.round(sent / loadSeconds)}/s)`);
    const generatorBehind = sent / loadSeconds < rate * 0.97 && inFlightCapHit === 0;
    worst = {
      name: generatorBehind
        ? `load generator (it sent only ${Math.round(sent / loadSeconds)}/s without waiting for the ingestor; bench CPU ${round(cpu.get(LOAD_GENERATOR) ?? Number.NaN, 2)} cores)`
        : `ingestor (${inFlightCapHit} waits for ${MAX_BATCHES_IN_FLIGHT} unanswered batches)`,
      score: Infinity,
    };
  }
  if (state.sendErrors > sendErrorsBefore) reasons.push(`${state.sendErrors - sendErrorsBefore} SubmitTransactions calls failed`);
  if (state.notAccepted > notAcceptedBefore) reasons.push(`${state.notAccepted - notAcceptedBefore} records not accepted by the ingestor`);

  // Drain: wait for the consumers to catch up and the outstanding notifications, for the next step's sake.
  const drainStart = Date.now();
  const drainedAt = new Map<string, number>();
  for (;;) {
    const s = await sample(platform, state, windowerHttp, loaderHttp);
    for (const [name, lag] of lagsOf(s)) if (lag <= 0 && !drainedAt.has(name)) drainedAt.set(name, (Date.now() - endWall) / 1000);
    const allDrained = [...lagsOf(s).keys()].every((name) => drainedAt.has(name));
    const allNotified = [...acknowledgedAt.keys()].every((accountId) => notifiedAt.has(accountId));
    if ((allDrained && allNotified) || Date.now() - drainStart > options.drainSeconds * 1000) break;
    await sleep(500);
  }
  for (const [name, series] of Object.entries(lags)) series.drainedAfterSeconds = drainedAt.has(name) ? round(drainedAt.get(name) ?? 0, 1) : undefined;
  for (const call of subscriptions) call.cancel();
  notifierClient.close();
  sender.close();

  const spendLatencies = [...acknowledgedAt].filter(([accountId]) => notifiedAt.has(accountId)).map(([accountId, at]) => (notifiedAt.get(accountId) ?? at) - at);
  const stageTimes = [...acknowledgedAt].flatMap(([accountId, at]) => {
    const times = alertTimes.get(accountId);
    const notified = notifiedAt.get(accountId);
    const seen = state.spendingAlertSeenAt.get(accountId);
    return times && notified !== undefined && seen !== undefined ? [{ at, notified, seen, ...times }] : [];
  });
  const traffic = state.trafficAlerts.filter((alert) => alert.slotEndMs >= startedWall && alert.slotEndMs <= endWall).map((alert) => alert.receivedAt - alert.slotEndMs);
  const freshnessAfter = histogramBuckets(await readPort(loaderHttp), 'tollstream_warehouse_ingest_to_stored_seconds');
  const emitAfter = histogramBuckets(await readPort(windowerHttp), 'tollstream_windower_emit_delay_seconds');
  const gauge = samples.slice(1).map((s) => s.warehouseFreshnessSeconds);
  const processes: Record<string, ProcessFigures> = {};
  for (const [name, pid] of processPids(platform)) {
    processes[name] = {
      pid,
      cpuCores: round(cpu.get(name) ?? Number.NaN, 2),
      cpuMicrosecondsPerRecord: stepMicrosecondsPerRecord(cpu.get(name) ?? Number.NaN, acknowledgedPerSecond),
      peakRssMiB: round(Math.max(...samples.map((s) => s.rss.get(name) ?? 0))),
      lifetimePeakRssMiB: round(peakRssMiB(pid) ?? Number.NaN),
    };
  }
  const result: PipelineStep = {
    offeredRecordsPerSecond: rate,
    seconds: round(loadSeconds, 1),
    batchSize,
    sentRecordsPerSecond: Math.round(sent / loadSeconds),
    acknowledgedRecordsPerSecond: Math.round(acknowledgedPerSecond),
    notAccepted: state.notAccepted - notAcceptedBefore,
    sendErrors: state.sendErrors - sendErrorsBefore,
    inFlightCapHit,
    batchLatencyMs: { p50: round(percentile(latencies, 50), 1), p99: round(percentile(latencies, 99), 1) },
    sustained: reasons.length === 0,
    reasons,
    backlogAtStart,
    limitingStage: worst?.name,
    lags,
    windowResultsPerSecond,
    billingResultsAppliedPerSecond: billingAppliedPerSecond,
    streamMessagesPerSecond: Object.fromEntries([...streamRates].map(([stream, perSecond]) => [stream, Math.round(perSecond)])),
    spendingAlertLatencyMs: { ...stats(spendLatencies), expected: breachAccounts.length },
    spendingAlertStagesMs: {
      windower: stats(stageTimes.map((t) => t.raisedAtMs - t.at)),
      billing: stats(stageTimes.map((t) => t.seen - t.raisedAtMs)),
      notifier: stats(stageTimes.map((t) => t.createdAtMs - t.seen)),
      delivery: stats(stageTimes.map((t) => t.notified - t.createdAtMs)),
    },
    trafficAlertDelayMs: stats(traffic),
    warehouseFreshnessSeconds: {
      p50: round(histogramQuantile(freshnessBefore, freshnessAfter, 0.5).value, 2),
      p99: round(histogramQuantile(freshnessBefore, freshnessAfter, 0.99).value, 2),
      messages: histogramQuantile(freshnessBefore, freshnessAfter, 0.5).count,
      gaugeP50: round(percentile(gauge, 50), 2),
      gaugeP99: round(percentile(gauge, 99), 2),
    },
    windowerEmitDelaySeconds: { p50: round(histogramQuantile(emitBefore, emitAfter, 0.5).value, 2), p99: round(histogramQuantile(emitBefore, emitAfter, 0.99).value, 2) },
    processes,
    totalPeakRssMiB: round(Object.values(processes).reduce((sum, p) => sum + p.peakRssMiB, 0)),
    pipelineRssMiB: {
      peakOfSum: round(Math.max(0, ...samples.map((s) => [...s.rss].filter(([name]) => name !== LOAD_GENERATOR).reduce((sum, [, mib]) => sum + mib, 0)))),
      sumOfPeaks: round(Object.entries(processes).filter(([name]) => name !== LOAD_GENERATOR).reduce((sum, [, p]) => sum + p.peakRssMiB, 0)),
    },
  };
  log(stepLine(result));
  return result;
}

function stepLine(step: PipelineStep): string {
  const lagText = Object.entries(step.lags)
    .map(([name, lag]) => `${name} mid ${lag.atMid} end ${lag.atEnd} (${lag.secondsBehindAtEnd} s behind) max ${lag.max}/${lag.bound}`)
    .join('; ');
  const cpu = Object.entries(step.processes)
    .map(([name, p]) => `${name} ${p.cpuCores} (${p.cpuMicrosecondsPerRecord ?? '?'} µs/record)`)
    .join(', ');
  return (
    `pipeline step ${step.offeredRecordsPerSecond} records/s offered (${step.seconds} s, batches of ${step.batchSize}): sent ${step.sentRecordsPerSecond}/s, acknowledged ${step.acknowledgedRecordsPerSecond}/s; ` +
    `window results ${step.windowResultsPerSecond}/s, applied by billing ${step.billingResultsAppliedPerSecond}/s → ` +
    `${step.sustained ? 'SUSTAINED' : `NOT sustained (${step.reasons.join('; ')})`}\n  lags: ${lagText}\n  CPU cores: ${cpu}; pipeline RSS peak ${step.pipelineRssMiB.peakOfSum} MiB (sum of peaks ${step.pipelineRssMiB.sumOfPeaks}; with the load generator ${step.totalPeakRssMiB})`
  );
}

// ---- the bench ---------------------------------------------------------------------------------

export async function runPipelineBench(overrides: Partial<PipelineBenchOptions> = {}, log: (text: string) => void = console.log): Promise<PipelineBenchFigures> {
  const options = { ...pipelineDefaults, ...overrides };
  checkEncoder();
  const { platform, raw } = await startPlatform(log, options.partitions);
  const state: RunState = { acknowledged: 0, notAccepted: 0, sendErrors: 0, stepCounter: 0, runId: Date.now().toString(36), trafficAlerts: [], spendingAlertSeenAt: new Map() };
  const spendingSubscription = platform.nc.subscribe(Subjects.alert('spending'));
  const spendingReader = (async () => {
    for await (const message of spendingSubscription) {
      const accountId = Alert.decode(message.data).spendingThresholdBreached?.accountId;
      if (accountId && !state.spendingAlertSeenAt.has(accountId)) state.spendingAlertSeenAt.set(accountId, Date.now());
    }
  })();
  const trafficSubscription = platform.nc.subscribe(Subjects.alert('traffic'));
  const trafficReader = (async () => {
    for await (const message of trafficSubscription) {
      const alert = Alert.decode(message.data).stationTraffic;
      if (alert?.slotEnd && alert.condition === TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM) state.trafficAlerts.push({ receivedAt: Date.now(), slotEndMs: alert.slotEnd.getTime(), stationId: alert.stationId });
    }
  })();
  try {
    await loadReferences(platform);
    const steps: PipelineStep[] = [];
    const run = async (rate: number) => {
      try {
        const step = await runStep(platform, state, rate, options, log);
        steps.push(step);
        return step;
      } catch (error) {
        // A service that died mid-step: its last words say why (out of memory, a refused start, a bug).
        for (const [name, service] of Object.entries(platform.services)) {
          if (service.process.exitSignal() !== null || (await Promise.race([service.process.exited.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 10))]))) {
            log(`pipeline: ${name} ended during the ${rate} records/s step; its last output:\n${service.process.output().split('\n').slice(-40).join('\n')}`);
          }
        }
        throw error;
      }
    };
    if (options.rates.length > 0) {
      for (const rate of options.rates) await run(rate);
    } else {
      // Rising ladder until the first step that is not sustained, then up to two bisections (to 5,000; to 1,000 below 10,000).
      let lastSustained = 0;
      let firstFailed: number | undefined;
      for (const rate of [10_000, 25_000, 50_000, 75_000, 100_000, 125_000, 150_000]) {
        if ((await run(rate)).sustained) lastSustained = rate;
        else {
          firstFailed = rate;
          break;
        }
      }
      for (let refinement = 0; firstFailed !== undefined && refinement < 2; refinement++) {
        const grain = firstFailed <= 10_000 ? 1_000 : 5_000;
        const middle = Math.round((lastSustained + firstFailed) / 2 / grain) * grain;
        if (middle <= lastSustained || middle >= firstFailed) break;
        if ((await run(middle)).sustained) lastSustained = middle;
        else firstFailed = middle;
      }
      if (!steps.some((step) => step.offeredRecordsPerSecond === 50_000)) await run(50_000);
    }
    const sustained = steps.filter((step) => step.sustained).sort((a, b) => b.offeredRecordsPerSecond - a.offeredRecordsPerSecond);
    const failed = steps.filter((step) => !step.sustained).sort((a, b) => a.offeredRecordsPerSecond - b.offeredRecordsPerSecond)[0];
    return {
      options,
      nodeArgs: serviceNodeArgsText(),
      settings: settingsText(),
      rawJetStream: raw,
      steps,
      highestSustainedRecordsPerSecond: sustained[0]?.offeredRecordsPerSecond,
      atHighestSustained: sustained[0],
      at50k: steps.find((step) => step.offeredRecordsPerSecond === 50_000),
      limitingStage: failed && {
        offeredRecordsPerSecond: failed.offeredRecordsPerSecond,
        stage: failed.limitingStage ?? '?',
        evidence: failed.reasons,
        cpuCores: Object.fromEntries(Object.entries(failed.processes).map(([name, p]) => [name, p.cpuCores])),
      },
      targets: { recordsPerSecond: 100_000, spendingAlertP99Ms: 2_000, warehouseFreshnessP99Seconds: 5, totalRssMiB: 2_048 },
    };
  } finally {
    trafficSubscription.unsubscribe();
    spendingSubscription.unsubscribe();
    await trafficReader;
    await spendingReader;
    await stopPlatform(platform);
  }
}

export function printPipelineBench(figures: PipelineBenchFigures): void {
  const raw = figures.rawJetStream;
  console.log(`\nPipeline end to end (nats-server + 6 services as processes, ${figures.settings}, node ${figures.nodeArgs}; load generator in the bench process)`);
  console.log('Raw JetStream in the same run');
  console.table({
    'publish, one message per record (msg/s)': raw.perMessagePublishPerSecond,
    'publish, 500 records per message (records/s)': raw.packedRecordsPublishPerSecond,
    'consume, pull consumer (msg/s)': raw.consumePerSecond,
  });
  console.log('Steps');
  console.table(
    figures.steps.map((step) => ({
      'offered/s': step.offeredRecordsPerSecond,
      'acknowledged/s': step.acknowledgedRecordsPerSecond,
      sustained: step.sustained ? 'yes' : 'NO',
      'max lag / bound': Object.entries(step.lags)
        .map(([name, lag]) => `${name.replace(/^TOLL_/, '')} ${lag.max}/${lag.bound} (${lag.secondsBehindAtEnd} s)`)
        .join(', '),
      'limiting stage': step.limitingStage ?? '',
    })),
  );
  const column = (step: PipelineStep | undefined) => {
    if (!step) return {};
    const row: Record<string, string | number> = {
      'offered records/s': step.offeredRecordsPerSecond,
      'acknowledged records/s': step.acknowledgedRecordsPerSecond,
      sustained: step.sustained ? 'yes' : `NO: ${step.reasons.join('; ')}`,
      'spending alert p50 / p99 (ms) [target p99 < 2000]': `${step.spendingAlertLatencyMs.p50} / ${step.spendingAlertLatencyMs.p99} (${step.spendingAlertLatencyMs.samples}/${step.spendingAlertLatencyMs.expected})`,
      '  of which windower / billing / notifier / delivery, p50 / p99 (ms)': (['windower', 'billing', 'notifier', 'delivery'] as const).map((stage) => `${step.spendingAlertStagesMs[stage].p50} / ${step.spendingAlertStagesMs[stage].p99}`).join(', '),
      'traffic alert after slot close p50 / p99 (ms)': `${step.trafficAlertDelayMs.p50} / ${step.trafficAlertDelayMs.p99} (${step.trafficAlertDelayMs.samples})`,
      'warehouse freshness p50 / p99 (s) [target p99 < 5]': `${step.warehouseFreshnessSeconds.p50} / ${step.warehouseFreshnessSeconds.p99}`,
      'windower emit delay p50 / p99 (s)': `${step.windowerEmitDelaySeconds.p50} / ${step.windowerEmitDelaySeconds.p99}`,
      'ingest batch latency p50 / p99 (ms)': `${step.batchLatencyMs.p50} / ${step.batchLatencyMs.p99}`,
      'window results published / applied by billing (per s)': `${step.windowResultsPerSecond} / ${step.billingResultsAppliedPerSecond}`,
    };
    for (const [name, p] of Object.entries(step.processes)) row[`${name}: CPU cores / µs per record / peak RSS MiB`] = `${p.cpuCores} / ${p.cpuMicrosecondsPerRecord ?? '?'} / ${p.peakRssMiB}`;
    row['pipeline RSS: nats-server + 6 services, peak of the sum / sum of peaks (MiB) [target < 2048]'] = `${step.pipelineRssMiB.peakOfSum} / ${step.pipelineRssMiB.sumOfPeaks}`;
    row['with the load generator, sum of peaks (MiB)'] = step.totalPeakRssMiB;
    return row;
  };
  const table: Record<string, Record<string, string | number>> = {};
  if (figures.atHighestSustained) table[`highest sustained (${figures.atHighestSustained.offeredRecordsPerSecond}/s)`] = column(figures.atHighestSustained);
  if (figures.at50k && figures.at50k !== figures.atHighestSustained) table['at 50,000/s'] = column(figures.at50k);
  if (Object.keys(table).length === 0 && figures.steps.length > 0) table[`last step (${figures.steps[figures.steps.length - 1].offeredRecordsPerSecond}/s)`] = column(figures.steps[figures.steps.length - 1]);
  console.log(`Highest sustained rate: ${figures.highestSustainedRecordsPerSecond ?? 'none of the steps'} records/s (target 100,000)`);
  const limit = figures.limitingStage;
  if (limit) {
    const cpu = Object.entries(limit.cpuCores)
      .map(([name, cores]) => `${name} ${cores}`)
      .join(', ');
    console.log(`Limiting stage (first step not sustained, ${limit.offeredRecordsPerSecond}/s): ${limit.stage}\n  ${limit.evidence.join('\n  ')}\n  CPU cores: ${cpu}`);
  }
  // One row per figure, one column per measured rate.
  const rows: Record<string, Record<string, string | number>> = {};
  for (const [columnName, values] of Object.entries(table)) {
    for (const [figure, value] of Object.entries(values)) (rows[figure] ??= {})[columnName] = value;
  }
  console.table(rows);
}

if (require.main === module) {
  runPipelineBench()
    .then(printPipelineBench)
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
