/**
 * The whole pipeline as separate processes on one nats-server: ingestor, windower, billing-threshold,
 * traffic-anomaly, warehouse-loader, notifier. Consistent short timings; restart one service; teardown.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AccountServiceClient,
  Alert,
  IngestServiceClient,
  NotificationServiceClient,
  TrafficReferenceServiceClient,
  type PutStationReferenceResponse,
  Streams,
  RejectionCode,
  TransactionStatus,
  type GetMonthlySpendResponse,
  type ListNotificationsResponse,
  type SetSpendingThresholdResponse,
  type SubmitTransactionsResponse,
  type TollTransaction,
} from '@tollstream/contracts';
import { startIngestor, startNats, startService, startWindower, tempDir, type NatsFsync, type NatsHandle, type ServiceProcess, type TempDirHandle } from '@tollstream/testing';
import { STATIONS, TRAFFIC_WINDOW, type ReferenceBand } from './scenario';

export const SERVICES = ['ingestor', 'windower', 'billing-threshold', 'traffic-anomaly', 'warehouse-loader', 'notifier'] as const;
export type ServiceName = (typeof SERVICES)[number];

const STATION_TOKEN = 'e2e-station-token-0000000001';
const ACCOUNT_TOKEN = 'e2e-account-api-token-00000001';
const NOTIFICATION_TOKEN = 'e2e-notification-token-000001';
const TRAFFIC_TOKEN = 'e2e-traffic-api-token-0000001';
const QUERY_TOKEN = 'e2e-warehouse-query-token-0001';
const PARTITIONS = '2';

export interface Pipeline {
  nats: NatsHandle;
  nc: NatsConnection;
  jsm: JetStreamManager;
  dir: TempDirHandle;
  services: Map<ServiceName, ServiceProcess>;
  address(name: ServiceName): string;
  restart(name: ServiceName): Promise<void>;
  start(name: ServiceName): Promise<void>;
  /** Puts reference bands through TrafficReferenceService (traffic-anomaly running); returns station → version id. */
  loadReferences(bands: ReferenceBand[]): Promise<Map<string, string>>;
  /** The last output lines of every running service (for failure reports). */
  diagnostics(lines?: number): string;
  close(): Promise<void>;
}

export interface PipelineOptions {
  /** Services started at once (default: all but traffic-anomaly and the windower, which the scenario starts). */
  services?: readonly ServiceName[];
  /** nats-server's fsync setting (default: the harness default, deploy/local/nats.json). */
  fsync?: NatsFsync;
  /** Variables every service gets (e.g. TLS_*); a service reads only those its schema knows. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts nats-server and ingestor, billing-threshold, warehouse-loader, notifier; traffic-anomaly
 * (after which reference data can be put) and the windower are started by the scenario with `start`.
 * The pipeline's own clients (address, loadReferences, the API helpers) speak plaintext.
 */
export async function startPipeline(name: string, options: PipelineOptions = {}): Promise<Pipeline> {
  const nats = await startNats({ fsync: options.fsync });
  const dir = await tempDir(name);
  const file = (fileName: string, content: string) => {
    const path = join(dir.path, fileName);
    writeFileSync(path, content);
    return path;
  };
  const credentialsFile = file('stations.json', JSON.stringify({ stations: [{ name: 'e2e', token: STATION_TOKEN, stationIds: STATIONS.map((s) => s.id) }] }));
  const zonesFile = file('station-zones.json', JSON.stringify({ stations: Object.fromEntries(STATIONS.map((s) => [s.id, s.zone])) }));
  const accountTokenFile = file('account-token', `${ACCOUNT_TOKEN}\n`);
  const notificationTokenFile = file('notification-token', `${NOTIFICATION_TOKEN}\n`);
  const trafficTokenFile = file('traffic-token', `${TRAFFIC_TOKEN}\n`);
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  const jsm = await jetstreamManager(nc);
  // options.env: variables every service gets (e.g. TLS_*); a service reads only those its schema knows.
  const common = { NATS_URL: nats.url, TOLL_TX_PARTITIONS: PARTITIONS, LOG_LEVEL: 'info', ...options.env };
  const services = new Map<ServiceName, ServiceProcess>();
  const ports = (service: ServiceName) => ({ grpcPort: services.get(service)?.grpcPort, httpPort: services.get(service)?.httpPort });

  const launch: Record<ServiceName, () => Promise<ServiceProcess>> = {
    ingestor: () => startIngestor({ natsUrl: nats.url, credentialsFile, grpcPort: ports('ingestor').grpcPort, env: { ...common, INGEST_APPEND_DEADLINE_MS: '5000' } }),
    windower: () =>
      startWindower({
        natsUrl: nats.url,
        env: {
          ...common,
          SPEND_WINDOW: 'tumbling:1s',
          SPEND_OUT_OF_ORDERNESS: '1s',
          SPEND_ALLOWED_LATENESS: '10m',
          TRAFFIC_WINDOW,
          TRAFFIC_OUT_OF_ORDERNESS: '1s',
          TRAFFIC_ALLOWED_LATENESS: '10m',
          OPERATOR_TIME_ZONE: 'UTC',
          STATION_TIME_ZONES_FILE: zonesFile,
          WINDOW_IDLE_TIMEOUT: '2s',
          WINDOWER_HEARTBEAT_INTERVAL: '500ms',
          WINDOWER_CHECKPOINT_INTERVAL: '1s',
          WINDOWER_LEASE_TTL: '3s',
          WINDOWER_LEASE_RENEW_INTERVAL: '1s',
        },
      }),
    'billing-threshold': () =>
      startService({
        app: 'billing-threshold',
        grpcPortVariable: 'BILLING_GRPC_PORT',
        httpPortVariable: 'BILLING_HTTP_PORT',
        ...ports('billing-threshold'),
        env: { ...common, BILLING_GRPC_HOST: '127.0.0.1', ACCOUNT_API_TOKEN_FILE: accountTokenFile, OPERATOR_TIME_ZONE: 'UTC', BILLING_ACK_WAIT: '2s', BILLING_OUTBOX_SWEEP_INTERVAL: '2s' },
      }),
    'traffic-anomaly': () =>
      startService({
        app: 'traffic-anomaly',
        grpcPortVariable: 'TRAFFIC_GRPC_PORT',
        httpPortVariable: 'TRAFFIC_HTTP_PORT',
        ...ports('traffic-anomaly'),
        env: { ...common, TRAFFIC_GRPC_HOST: '127.0.0.1', TRAFFIC_API_TOKEN_FILE: trafficTokenFile, TRAFFIC_WINDOW, TRAFFIC_ALLOWED_LATENESS: '10m', TRAFFIC_REFERENCE_REFRESH: '1s' },
      }),
    'warehouse-loader': () =>
      startService({
        app: 'warehouse-loader',
        httpPortVariable: 'WAREHOUSE_HTTP_PORT',
        ...ports('warehouse-loader'),
        env: { ...common, WAREHOUSE_DATA_DIR: join(dir.path, 'warehouse'), WAREHOUSE_QUERY_TOKEN: QUERY_TOKEN, WAREHOUSE_HTTP_HOST: '127.0.0.1', WAREHOUSE_ACK_WAIT_MS: '5s' },
      }),
    notifier: () =>
      startService({
        app: 'notifier',
        grpcPortVariable: 'NOTIFIER_GRPC_PORT',
        httpPortVariable: 'NOTIFIER_HTTP_PORT',
        ...ports('notifier'),
        env: { ...common, NOTIFIER_GRPC_HOST: '127.0.0.1', NOTIFICATION_API_TOKEN_FILE: notificationTokenFile, NOTIFIER_ACK_WAIT: '2s' },
      }),
  };

  const pipeline: Pipeline = {
    nats,
    nc,
    jsm,
    dir,
    services,
    address(service) {
      const process = services.get(service);
      if (!process) throw new Error(`${service} is not running`);
      return `127.0.0.1:${service === 'warehouse-loader' ? process.httpPort : process.grpcPort}`;
    },
    async start(service) {
      services.set(service, await launch[service]());
    },
    async restart(service) {
      const process = services.get(service);
      if (process) await process.kill('SIGKILL');
      services.set(service, await launch[service]());
    },
    async loadReferences(bands) {
      const client = new TrafficReferenceServiceClient(pipeline.address('traffic-anomaly'), grpc.credentials.createInsecure());
      const put = unary<object, PutStationReferenceResponse>(client, 'putStationReference', TRAFFIC_TOKEN);
      try {
        const versions = new Map<string, string>();
        for (const band of bands) {
          const response = await put({
            stationId: band.stationId,
            effectiveFrom: new Date('2026-01-01T00:00:00Z'),
            timeZone: band.timeZone,
            slotMinutes: 1,
            bands: [{ weekday: band.weekday, startMinute: band.startMinute, minimum: band.minimum, maximum: band.maximum }],
            dryRun: false,
          });
          versions.set(band.stationId, response.version?.version ?? '');
        }
        return versions;
      } finally {
        client.close();
      }
    },
    diagnostics(lines = 25) {
      return [...services.values()]
        .map((process) => `--- ${process.name} (pid ${process.pid}) ---\n${process.process.output().split('\n').slice(-lines).join('\n')}`)
        .join('\n');
    },
    async close() {
      await Promise.all([...services.values()].map((process) => process.kill('SIGKILL').catch(() => null)));
      await nc.close().catch(() => undefined);
      await nats.stop().catch(() => undefined);
      await dir.remove().catch(() => undefined);
    },
  };
  try {
    const initial = options.services ?? SERVICES.filter((service) => service !== 'traffic-anomaly' && service !== 'windower');
    for (const service of initial) await pipeline.start(service);
  } catch (error) {
    await pipeline.close();
    throw error;
  }
  return pipeline;
}

function unary<Req, Res>(client: grpc.Client, method: string, token: string): (request: Req) => Promise<Res> {
  type Unary = (request: Req, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, value: Res) => void) => void;
  return (request) =>
    new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      const fn = (client as unknown as Record<string, Unary>)[method];
      fn.call(client, request, metadata, { deadline: Date.now() + 15_000 }, (error, value) => (error ? reject(error) : resolve(value)));
    });
}

export function accountApi(address: string) {
  const client = new AccountServiceClient(address, grpc.credentials.createInsecure());
  return {
    setThreshold: (accountId: string, amountMinor: number) =>
      unary<{ accountId: string; threshold: { amountMinor: number; currency: string } }, SetSpendingThresholdResponse>(client, 'setSpendingThreshold', ACCOUNT_TOKEN)({ accountId, threshold: { amountMinor, currency: 'USD' } }),
    monthlySpend: (accountId: string, month: string) => unary<{ accountId: string; month: string }, GetMonthlySpendResponse>(client, 'getMonthlySpend', ACCOUNT_TOKEN)({ accountId, month }),
    close: () => client.close(),
  };
}

export function notificationApi(address: string) {
  const client = new NotificationServiceClient(address, grpc.credentials.createInsecure());
  const list = unary<{ accountId: string; pageSize: number; pageToken: string }, ListNotificationsResponse>(client, 'listNotifications', NOTIFICATION_TOKEN);
  return {
    /** Every alert id in the account's inbox (all pages). */
    async alertIds(accountId: string): Promise<string[]> {
      const ids: string[] = [];
      let pageToken = '';
      for (let page = 0; page < 100; page++) {
        const response = await list({ accountId, pageSize: 100, pageToken });
        ids.push(...response.notifications.map((n) => n.alertId));
        pageToken = response.nextPageToken;
        if (!pageToken) break;
      }
      return ids;
    },
    close: () => client.close(),
  };
}

export interface SendOutcome {
  accepted: Set<string>;
  duplicate: number;
  rejected: Map<string, { field: string; reason: string }>;
  /** How the ingestor answered when a batch had to be resent: error or status → count. */
  retries: Map<string, number>;
  /**
   * Records answered DUPLICATE when their batch was resent after the call failed (the ingestor was
   * killed after storing them, before its answer came): stored by the lost call, not a second time.
   */
  storedByLostAnswer: Set<string>;
}

/**
 * Sends batches like a station: one batch in flight, resent until every record has an answer
 * (gRPC errors and REJECTED + REJECTION_CODE_UNAVAILABLE are retried, as during a crash or broker restart). With
 * `dueAt`, a batch is not sent before its time (rate limit / live event times).
 */
export async function sendBatches(
  address: () => string,
  batches: TollTransaction[][],
  options: { dueAt?: (batchIndex: number) => number; deadlineMs: number; onBatch?: (index: number) => void },
  outcome: SendOutcome = { accepted: new Set(), duplicate: 0, rejected: new Map(), retries: new Map(), storedByLostAnswer: new Set() },
): Promise<SendOutcome> {
  let client = new IngestServiceClient(address(), grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${STATION_TOKEN}`);
  const submit = (transactions: TollTransaction[]) =>
    new Promise<SubmitTransactionsResponse>((resolve, reject) =>
      client.submitTransactions({ transactions }, metadata, { deadline: Date.now() + 10_000 }, (error, response) => (error ? reject(error) : resolve(response))),
    );
  const retried = (why: string) => outcome.retries.set(why, (outcome.retries.get(why) ?? 0) + 1);
  try {
    for (const [index, batch] of batches.entries()) {
      const due = options.dueAt?.(index) ?? 0;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      let pending = batch;
      let answerLost = false;
      while (pending.length > 0) {
        if (Date.now() > options.deadlineMs) {
          throw new Error(`sending: batch ${index} still had ${pending.length} unanswered records at the deadline; retries: ${JSON.stringify([...outcome.retries])}`);
        }
        let response: SubmitTransactionsResponse;
        try {
          response = await submit(pending);
        } catch (error) {
          retried(`error: ${(error as Error).message.slice(0, 80)}`);
          answerLost = true;
          client.close();
          await new Promise((resolve) => setTimeout(resolve, 300));
          client = new IngestServiceClient(address(), grpc.credentials.createInsecure());
          continue;
        }
        const retry: TollTransaction[] = [];
        response.results.forEach((result, i) => {
          const record = pending[i];
          if (result.status === TransactionStatus.TRANSACTION_STATUS_ACCEPTED) outcome.accepted.add(record.transactionId);
          else if (result.status === TransactionStatus.TRANSACTION_STATUS_DUPLICATE) {
            outcome.duplicate++;
            if (answerLost && !outcome.accepted.has(record.transactionId)) outcome.storedByLostAnswer.add(record.transactionId);
          }
          else if (result.status === TransactionStatus.TRANSACTION_STATUS_REJECTED && result.rejectionCode !== RejectionCode.REJECTION_CODE_UNAVAILABLE) {
            outcome.rejected.set(record.transactionId, { field: result.field, reason: result.reason });
          }
          else {
            retry.push(record);
            retried(`${TransactionStatus[result.status]} ${RejectionCode[result.rejectionCode]}: ${result.reason.slice(0, 60)}`);
          }
        });
        pending = retry;
        if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      options.onBatch?.(index);
    }
  } finally {
    client.close();
  }
  return outcome;
}

/** Every alert stored in TOLL_ALERTS, in stream order. */
export async function readAlerts(jsm: JetStreamManager): Promise<Alert[]> {
  const info = await jsm.streams.info(Streams.alerts);
  const alerts: Alert[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(Streams.alerts, { seq }).catch(() => null);
    if (message) alerts.push(Alert.decode(message.data));
  }
  return alerts;
}

/** Read-only SQL through the loader's /query endpoint. */
export async function queryWarehouse(address: string, sql: string): Promise<unknown[][]> {
  const response = await fetch(`http://${address}/query`, {
    method: 'POST',
    headers: { authorization: `Bearer ${QUERY_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ sql }),
    signal: AbortSignal.timeout(20_000),
  });
  if (!response.ok) throw new Error(`/query answered ${response.status}: ${await response.text()}`);
  const table = (await response.json()) as { rows: unknown[][]; truncated: boolean };
  if (table.truncated) throw new Error('/query result truncated');
  return table.rows;
}

/** station/transaction id of every row of the deduplicated view, paged. */
export async function warehouseTransactionIds(address: string): Promise<string[]> {
  const ids: string[] = [];
  for (let offset = 0; ; offset += 10_000) {
    const rows = await queryWarehouse(address, `SELECT station_id, transaction_id FROM tolls.transactions_unique ORDER BY station_id, transaction_id LIMIT 10000 OFFSET ${offset}`);
    ids.push(...rows.map((row) => `${String(row[0])}/${String(row[1])}`));
    if (rows.length < 10_000) return ids;
  }
}
