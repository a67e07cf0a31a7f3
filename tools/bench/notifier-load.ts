/**
 * Notifier benchmark (a real notifier process, the embedded JetStream KV inbox):
 * - throughput: spending alerts published as fast as possible → notifications stored (and pushed on
 *   the live feed) per second, measured until the notifier's inbox consumer has nothing pending;
 * - latency: alert published → received by a live SubscribeNotifications subscriber (gRPC), at a
 *   steady rate over several accounts.
 * Run: npx tsx tools/bench/notifier-load.ts
 */
import * as grpc from '@grpc/grpc-js';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Alert, NotificationServiceClient, Streams, Subjects, type Notification } from '@tollstream/contracts';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { startNats, startService, type ServiceProcess } from '@tollstream/testing';
import { cpuSeconds, peakRssMiB, percentile } from './stats';

export interface NotifierBenchOptions {
  /** Alerts of the throughput phase, over `accounts` accounts. */
  alerts: number;
  accounts: number;
  /** Alerts of the latency phase, their rate, and the subscribed accounts they go to. */
  latencyAlerts: number;
  latencyAlertsPerSecond: number;
  subscribers: number;
}

export interface NotifierBenchFigures {
  options: NotifierBenchOptions;
  notificationsPerSecond: number;
  throughputSeconds: number;
  cpuSeconds?: number;
  peakRssMiB?: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; samples: number };
}

const defaults: NotifierBenchOptions = { alerts: 5_000, accounts: 1_000, latencyAlerts: 1_000, latencyAlertsPerSecond: 100, subscribers: 20 };
const TOKEN = 'notifier-bench-token-0123456789';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function alertFor(accountId: string, index: number): Alert {
  const now = new Date();
  return {
    alertId: `spending/${accountId}/2026-11/v${index}`,
    raisedAt: now,
    stationTraffic: undefined,
    spendingThresholdBreached: { accountId, month: '2026-11', timeZone: 'UTC', thresholdMinor: 10_000, totalMinor: 10_100, currency: 'USD', breachedAt: now },
  };
}

async function publish(js: JetStreamClient, alert: Alert): Promise<void> {
  await js.publish(Subjects.alert('spending'), Alert.encode(alert).finish(), { msgID: alert.alertId });
}

export async function runNotifierBench(overrides: Partial<NotifierBenchOptions> = {}, log: (text: string) => void = console.log): Promise<NotifierBenchFigures> {
  const options = { ...defaults, ...overrides };
  const nats = await startNats();
  const nc = await connect({ servers: nats.url });
  let notifier: ServiceProcess | undefined;
  try {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await provisionTopology(jsm, declareTopology());
    notifier = await startService({
      app: 'notifier',
      env: { NATS_URL: nats.url, NOTIFICATION_API_TOKEN: TOKEN, LOG_LEVEL: 'info' },
      grpcPortVariable: 'NOTIFIER_GRPC_PORT',
      httpPortVariable: 'NOTIFIER_HTTP_PORT',
    });
    const cpuAtStart = cpuSeconds(notifier.pid) ?? 0;

    // Throughput.
    log(`notifier bench: ${options.alerts} alerts over ${options.accounts} accounts...`);
    const started = Date.now();
    for (let i = 0; i < options.alerts; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, options.alerts - i) }, (_, k) => publish(js, alertFor(`bench-${(i + k) % options.accounts}`, i + k))));
    }
    for (;;) {
      const info = await jsm.consumers.info(Streams.alerts, 'notifier-inbox');
      if (info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq >= options.alerts) break;
      await sleep(20);
    }
    const throughputSeconds = (Date.now() - started) / 1000;
    const cpu = (cpuSeconds(notifier.pid) ?? cpuAtStart) - cpuAtStart;

    // Latency, with live subscribers.
    const client = new NotificationServiceClient(`127.0.0.1:${notifier.grpcPort}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${TOKEN}`);
    const receivedAt = new Map<string, number>();
    const calls = Array.from({ length: options.subscribers }, (_, s) => {
      const call = client.subscribeNotifications({ accountId: `live-${s}`, afterNotificationId: '' }, metadata);
      call.on('data', (response: { notification?: Notification }) => {
        if (response.notification) receivedAt.set(response.notification.alertId, Date.now());
      });
      call.on('error', () => undefined);
      return call;
    });
    await sleep(500);
    const sentAt = new Map<string, number>();
    const interval = 1000 / options.latencyAlertsPerSecond;
    const begin = Date.now();
    for (let i = 0; i < options.latencyAlerts; i++) {
      const alert = alertFor(`live-${i % options.subscribers}`, i);
      const due = begin + i * interval;
      if (due > Date.now()) await sleep(due - Date.now());
      sentAt.set(alert.alertId, Date.now());
      void publish(js, alert);
    }
    const deadline = Date.now() + 30_000;
    while (receivedAt.size < options.latencyAlerts && Date.now() < deadline) await sleep(50);
    calls.forEach((call) => call.cancel());
    client.close();
    const latencies = [...sentAt].filter(([id]) => receivedAt.has(id)).map(([id, at]) => (receivedAt.get(id) as number) - at);
    return {
      options,
      notificationsPerSecond: Math.round(options.alerts / throughputSeconds),
      throughputSeconds,
      cpuSeconds: cpu,
      peakRssMiB: peakRssMiB(notifier.pid),
      latencyMs: { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: Math.max(...latencies), samples: latencies.length },
    };
  } finally {
    await notifier?.stop();
    await nc.close();
    await nats.stop();
  }
}

export function printNotifierBench(figures: NotifierBenchFigures): void {
  const o = figures.options;
  console.log('\nnotifier (nats-kv inbox)');
  console.log(
    `  ${figures.notificationsPerSecond.toLocaleString('en-US')} notifications/s stored and pushed (${o.alerts.toLocaleString('en-US')} alerts, ${o.accounts} accounts, ` +
      `${figures.throughputSeconds.toFixed(1)} s; notifier CPU ${figures.cpuSeconds?.toFixed(1) ?? '?'} s, peak RSS ${figures.peakRssMiB?.toFixed(0) ?? '?'} MiB)`,
  );
  const l = figures.latencyMs;
  console.log(
    `  alert published → live subscriber received: p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, max ${l.max} ms ` +
      `(${l.samples}/${o.latencyAlerts} alerts at ${o.latencyAlertsPerSecond}/s to ${o.subscribers} subscribed accounts)`,
  );
}

if (require.main === module) {
  runNotifierBench()
    .then(printNotifierBench)
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
