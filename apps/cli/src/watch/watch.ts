import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Alert, Streams } from '@tollstream/contracts';
import { inspectStreams } from '@tollstream/messaging';
import { renderDashboard, serviceRows, watchedServices, type RecentAlert, type ServiceReading, type WatchSnapshot } from './dashboard';
import { readMetrics, usesTls, type ClientTlsOptions } from '@tollstream/service-kit';

export interface WatchCommandOptions {
  natsUrl: string;
  host: string;
  /** Overrides of the services' metrics ports, e.g. { ingestor: 19464 }. */
  ports: Record<string, number>;
  intervalSeconds: number;
  /** Print one screen (after two readings, so rates show) and exit. */
  once?: boolean;
  json?: boolean;
  maxAlerts: number;
  /** The services' ops ports serve HTTPS (TLS_OPS_HTTP); unset: plain HTTP. */
  tls?: ClientTlsOptions;
}

export interface WatchIo {
  stdout: NodeJS.WritableStream;
  /** Redraw in place (a terminal) or print screen after screen (a log, a pipe). */
  isTTY: boolean;
  /** Resolves when the user asks to stop (Ctrl-C). */
  stopped: Promise<void>;
}

const METRICS_TIMEOUT_MS = 1_500;

async function readService(name: string, url: string, tls: ClientTlsOptions | undefined): Promise<ServiceReading> {
  try {
    return { name, url, samples: await readMetrics(url, METRICS_TIMEOUT_MS, tls) };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
    const message = cause ?? (error instanceof Error ? error.message : String(error));
    return { name, url, error: message.startsWith(url) ? message : `${url}: ${message}` };
  }
}

/** How far back the view looks for alerts already on the stream when it starts. */
const ALERT_HISTORY_SCAN = 2_000;

/**
 * The newest alerts of each kind already on the alerts stream, so the view is not empty after a
 * restart. A wave of spending alerts must not hide the traffic alerts: it scans back until it has
 * enough of both, or ALERT_HISTORY_SCAN messages.
 */
async function latestAlerts(jsm: JetStreamManager, countPerKind: number): Promise<RecentAlert[]> {
  const alerts: RecentAlert[] = [];
  try {
    const info = await jsm.streams.info(Streams.alerts);
    let spending = 0;
    let traffic = 0;
    const oldest = Math.max(info.state.first_seq, info.state.last_seq - ALERT_HISTORY_SCAN + 1, 1);
    for (let sequence = info.state.last_seq; sequence >= oldest && (spending < countPerKind || traffic < countPerKind); sequence--) {
      const message = await jsm.streams.getMessage(Streams.alerts, { seq: sequence }).catch(() => null);
      if (!message) continue;
      const alert = Alert.decode(message.data);
      if (alert.spendingThresholdBreached ? spending++ >= countPerKind : traffic++ >= countPerKind) continue;
      alerts.unshift({ receivedAt: message.timestamp ? Date.parse(message.timestamp) : Date.now(), alert });
    }
  } catch {
    // No alerts stream yet (no service provisioned it): nothing to show.
  }
  return alerts;
}

class AlertFeed {
  readonly alerts: RecentAlert[] = [];
  private subscription: Subscription | undefined;

  constructor(private readonly maxAlerts: number) {}

  async start(nc: NatsConnection, jsm: JetStreamManager): Promise<void> {
    // Subscribe before reading the history so nothing falls between the two; ids dedupe the overlap.
    this.subscription = nc.subscribe('tolls.alerts.>', {
      callback: (error, message) => {
        if (error) return;
        try {
          this.add({ receivedAt: Date.now(), alert: Alert.decode(message.data) });
        } catch {
          // Not an alert (e.g. a malformed publish): the notifier dead-letters it; the view skips it.
        }
      },
    });
    for (const recent of await latestAlerts(jsm, this.maxAlerts)) this.add(recent);
  }

  private add(recent: RecentAlert): void {
    if (this.alerts.some((known) => known.alert.alertId === recent.alert.alertId)) return;
    this.alerts.push(recent);
    this.alerts.sort((a, b) => (a.alert.raisedAt?.getTime() ?? a.receivedAt) - (b.alert.raisedAt?.getTime() ?? b.receivedAt));
    // Keep the newest of each kind: a wave of spending alerts must not push the traffic alerts out.
    const isSpending = (recent: RecentAlert) => recent.alert.spendingThresholdBreached !== undefined;
    for (const kind of [true, false]) {
      const ofKind = this.alerts.filter((known) => isSpending(known) === kind);
      for (const old of ofKind.slice(0, Math.max(0, ofKind.length - this.maxAlerts))) this.alerts.splice(this.alerts.indexOf(old), 1);
    }
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }
}

async function takeSnapshot(options: WatchCommandOptions, jsm: JetStreamManager | undefined, feed: AlertFeed | undefined, natsError: string | undefined): Promise<WatchSnapshot> {
  const takenAt = Date.now();
  const scheme = options.tls && usesTls(options.tls) ? 'https' : 'http';
  const services = await Promise.all(
    watchedServices.map((service) =>
      readService(service.name, `${scheme}://${options.host}:${options.ports[service.name] ?? service.defaultPort}/metrics`, options.tls),
    ),
  );
  let streams: WatchSnapshot['streams'];
  let streamsError = natsError;
  if (jsm) {
    try {
      streams = await inspectStreams(jsm);
    } catch (error) {
      streamsError = error instanceof Error ? error.message : String(error);
    }
  }
  return { takenAt, services, streams, streamsError, alerts: [...(feed?.alerts ?? [])] };
}

const sleep = (ms: number, stopped: Promise<void>): Promise<void> =>
  Promise.race([new Promise<void>((resolve) => setTimeout(resolve, ms).unref()), stopped]);

/**
 * The operations team's live view of a running platform: each service's rate, CPU, memory and dead
 * letters (from its /metrics), consumer lag and dead letters by source (from JetStream), warehouse
 * freshness and the latest alerts. Read-only: it never changes anything.
 */
export async function runWatch(options: WatchCommandOptions, io: WatchIo): Promise<void> {
  let nc: NatsConnection | undefined;
  let jsm: JetStreamManager | undefined;
  let feed: AlertFeed | undefined;
  let natsError: string | undefined;
  try {
    nc = await connect({ servers: options.natsUrl.split(','), name: 'tollstream-watch', timeout: 3_000, maxReconnectAttempts: -1 });
    jsm = await jetstreamManager(nc);
    feed = new AlertFeed(options.maxAlerts);
    await feed.start(nc, jsm);
  } catch (error) {
    // The view still shows the services; it says why the streams are missing.
    natsError = `NATS at ${options.natsUrl}: ${error instanceof Error ? error.message : String(error)}`;
  }
  let stopping = false;
  void io.stopped.then(() => {
    stopping = true;
  });
  try {
    let before: WatchSnapshot | undefined;
    for (;;) {
      const now = await takeSnapshot(options, jsm, feed, natsError);
      const ready = before !== undefined || !options.once;
      if (ready) {
        if (options.json) {
          io.stdout.write(`${JSON.stringify({ takenAt: new Date(now.takenAt).toISOString(), streams: now.streams, streamsError: now.streamsError, services: serviceRows(now, before), alerts: now.alerts.map((recent) => Alert.toJSON(recent.alert)) })}\n`);
        } else {
          const screen = renderDashboard(now, before, { color: io.isTTY, intervalSeconds: options.intervalSeconds, maxAlerts: options.maxAlerts });
          io.stdout.write(io.isTTY ? `\u001b[H\u001b[2J${screen}` : `${screen}\n`);
        }
      }
      if (options.once && before !== undefined) return;
      before = now;
      if (stopping) return;
      await sleep(options.once ? 1_000 : options.intervalSeconds * 1000, io.stopped);
      if (stopping) return;
    }
  } finally {
    feed?.stop();
    await nc?.close().catch(() => undefined);
  }
}
