import { Alert, TrafficCondition } from '@tollstream/contracts';
import type { StreamStatus } from '@tollstream/messaging';
import { maxOf, sumOf, type MetricSample } from '@tollstream/service-kit';

/** A figure of one service read from its /metrics: a per-second rate of a counter, or a current value. */
interface Figure {
  label: string;
  metric: string;
  where?: Record<string, string>;
  kind: 'rate' | 'total' | 'value' | 'max';
  unit?: 'seconds' | 'count';
}

export interface WatchedService {
  name: string;
  defaultPort: number;
  /** Not an error when unreachable (e.g. the simulator is not always running). */
  optional?: boolean;
  /** The service's main work per second, in the operator's words. */
  throughput: Figure;
  details: Figure[];
}

/** What each service does, as the live view shows it (metric names are the services' own). */
export const watchedServices: readonly WatchedService[] = [
  {
    name: 'simulator',
    defaultPort: 9470,
    optional: true,
    throughput: { label: 'sent/s', metric: 'tollstream_simulator_records_sent_total', kind: 'rate' },
    details: [],
  },
  {
    name: 'ingestor',
    defaultPort: 9464,
    throughput: { label: 'accepted/s', metric: 'tollstream_ingest_records_total', where: { outcome: 'accepted' }, kind: 'rate' },
    details: [
      { label: 'duplicates', metric: 'tollstream_ingest_records_total', where: { outcome: 'duplicate' }, kind: 'total' },
      { label: 'rejected', metric: 'tollstream_ingest_records_total', where: { outcome: 'rejected' }, kind: 'total' },
    ],
  },
  {
    name: 'windower',
    defaultPort: 9465,
    throughput: { label: 'records/s', metric: 'tollstream_windower_records_total', kind: 'rate' },
    details: [
      { label: 'results/s', metric: 'tollstream_windower_results_total', kind: 'rate' },
      { label: 'watermark lag', metric: 'tollstream_windower_watermark_lag_seconds', kind: 'max', unit: 'seconds' },
      { label: 'late', metric: 'tollstream_windower_late_records_total', kind: 'total' },
    ],
  },
  {
    name: 'warehouse-loader',
    defaultPort: 9466,
    throughput: { label: 'rows/s', metric: 'tollstream_warehouse_rows_inserted_total', kind: 'rate' },
    details: [
      { label: 'freshness', metric: 'tollstream_warehouse_freshness_seconds', kind: 'max', unit: 'seconds' },
      { label: 'lag msgs', metric: 'tollstream_warehouse_consumer_lag_messages', kind: 'value' },
    ],
  },
  {
    name: 'billing-threshold',
    defaultPort: 9467,
    throughput: { label: 'results/s', metric: 'tollstream_billing_results_total', kind: 'rate' },
    details: [{ label: 'alerts', metric: 'tollstream_billing_alerts_published_total', kind: 'total' }],
  },
  {
    name: 'traffic-anomaly',
    defaultPort: 9468,
    throughput: { label: 'slots judged/s', metric: 'tollstream_traffic_evaluations_total', kind: 'rate' },
    details: [
      { label: 'alerts', metric: 'tollstream_traffic_alerts_published_total', kind: 'total' },
      { label: 'watermark lag', metric: 'tollstream_traffic_watermark_lag_seconds', kind: 'max', unit: 'seconds' },
    ],
  },
  {
    name: 'notifier',
    defaultPort: 9469,
    throughput: { label: 'notifications/s', metric: 'tollstream_notifier_notifications_total', where: { outcome: 'created' }, kind: 'rate' },
    details: [
      { label: 'live subscribers', metric: 'tollstream_notifier_live_subscribers', kind: 'value' },
      { label: 'webhooks ok', metric: 'tollstream_notifier_webhook_deliveries_total', where: { outcome: 'delivered' }, kind: 'total' },
    ],
  },
];

export interface ServiceReading {
  name: string;
  url: string;
  /** Undefined when unreachable. */
  samples?: MetricSample[];
  error?: string;
}

export interface RecentAlert {
  receivedAt: number;
  alert: Alert;
}

export interface WatchSnapshot {
  takenAt: number;
  services: ServiceReading[];
  streams?: StreamStatus[];
  streamsError?: string;
  alerts: RecentAlert[];
}

export interface ServiceRow {
  name: string;
  state: 'up' | 'down' | 'not running';
  throughput: string;
  cpu: string;
  rss: string;
  deadLetters: string;
  details: string;
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function formatFigure(figure: Figure, value: number): string {
  if (figure.unit === 'seconds') return value < 10 ? `${value.toFixed(2)} s` : `${integer.format(value)} s`;
  return integer.format(value);
}

function figureValue(figure: Figure, now: ServiceReading, before: ServiceReading | undefined, elapsedSeconds: number): number | undefined {
  if (!now.samples) return undefined;
  if (figure.kind === 'max') return maxOf(now.samples, figure.metric);
  const current = sumOf(now.samples, figure.metric, figure.where);
  if (figure.kind !== 'rate') return current;
  // A rate needs two readings; a restarted process resets its counters (then no rate this time).
  const previous = before?.samples ? sumOf(before.samples, figure.metric, figure.where) : undefined;
  if (current === undefined || previous === undefined || current < previous || elapsedSeconds <= 0) return undefined;
  return (current - previous) / elapsedSeconds;
}

/** One row per service: what it does per second, CPU, memory, dead letters and its key figures. */
export function serviceRows(now: WatchSnapshot, before: WatchSnapshot | undefined): ServiceRow[] {
  const elapsedSeconds = before ? (now.takenAt - before.takenAt) / 1000 : 0;
  return watchedServices.map((service) => {
    const reading = now.services.find((candidate) => candidate.name === service.name);
    const previous = before?.services.find((candidate) => candidate.name === service.name);
    if (!reading?.samples) {
      return { name: service.name, state: service.optional ? 'not running' : 'down', throughput: '', cpu: '', rss: '', deadLetters: '', details: reading?.error ?? '' };
    }
    const rate = figureValue(service.throughput, reading, previous, elapsedSeconds);
    const cpu = figureValue({ label: 'cpu', metric: 'process_cpu_seconds_total', kind: 'rate' }, reading, previous, elapsedSeconds);
    const rss = sumOf(reading.samples, 'process_resident_memory_bytes');
    const deadLetters = sumOf(reading.samples, 'tollstream_dead_letters_total') ?? 0;
    const details = service.details
      .map((figure) => {
        const value = figureValue(figure, reading, previous, elapsedSeconds);
        return value === undefined ? undefined : `${figure.label} ${formatFigure(figure, value)}`;
      })
      .filter((text): text is string => text !== undefined)
      .join(' · ');
    return {
      name: service.name,
      state: 'up',
      throughput: rate === undefined ? `… ${service.throughput.label}` : `${integer.format(rate)} ${service.throughput.label}`,
      cpu: cpu === undefined ? '' : `${Math.round(cpu * 100)}%`,
      rss: rss === undefined ? '' : `${Math.round(rss / 2 ** 20)} MiB`,
      deadLetters: integer.format(deadLetters),
      details,
    };
  });
}

/** Money in minor units as the currency's major units, e.g. 5125 USD → "51.25 USD". */
export function formatMoney(amountMinor: number | bigint | string, currency: string): string {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    // Unknown currency code: show two decimals.
  }
  const minor = BigInt(amountMinor);
  const negative = minor < 0n;
  const absolute = negative ? -minor : minor;
  const scale = 10n ** BigInt(digits);
  const major = `${absolute / scale}${digits > 0 ? `.${(absolute % scale).toString().padStart(digits, '0')}` : ''}`;
  return `${negative ? '-' : ''}${major} ${currency}`;
}

const timeOfDay = (date: Date | undefined, timeZone = 'UTC'): string =>
  date ? date.toLocaleTimeString('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hour12: false }) : '?';

/** One line for an alert, in the words of the people who receive it. */
export function describeAlert(alert: Alert): string {
  const spending = alert.spendingThresholdBreached;
  if (spending) {
    return (
      `spending  ${spending.accountId} passed ${formatMoney(spending.thresholdMinor, spending.currency)} in ${spending.month} ` +
      `(total ${formatMoney(spending.totalMinor, spending.currency)})`
    );
  }
  const traffic = alert.stationTraffic;
  if (traffic) {
    const slot = `${timeOfDay(traffic.slotStart, traffic.timeZone || 'UTC')}-${timeOfDay(traffic.slotEnd, traffic.timeZone || 'UTC')} ${traffic.timeZone}`;
    const band = traffic.expectedMaximum > 0 ? `${traffic.expectedMinimum}-${traffic.expectedMaximum}` : `at least ${traffic.expectedMinimum}`;
    const condition =
      traffic.condition === TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM
        ? 'below minimum'
        : traffic.condition === TrafficCondition.TRAFFIC_CONDITION_ABOVE_MAXIMUM
          ? 'above maximum'
          : 'back within band';
    return `traffic   ${traffic.stationId} ${condition} ${slot}: ${traffic.vehicleCount} vehicles (expected ${band})`;
  }
  return `alert     ${alert.alertId}`;
}

function table(rows: readonly string[][]): string[] {
  const widths = rows[0].map((_cell, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]))).join('  ').trimEnd());
}

const bold = (text: string, color: boolean): string => (color ? `\u001b[1m${text}\u001b[0m` : text);
const red = (text: string, color: boolean): string => (color ? `\u001b[31m${text}\u001b[0m` : text);

export interface RenderOptions {
  color: boolean;
  intervalSeconds: number;
  maxAlerts: number;
}

/** The whole screen as text: services, consumer lag, dead letters by source, latest alerts. */
export function renderDashboard(now: WatchSnapshot, before: WatchSnapshot | undefined, options: RenderOptions): string {
  const lines: string[] = [];
  lines.push(
    `${bold('tollstream live view', options.color)}  ${new Date(now.takenAt).toISOString().replace('T', ' ').slice(0, 19)} UTC` +
      `  (every ${options.intervalSeconds} s; Ctrl-C to quit)`,
    '',
  );
  const rows = serviceRows(now, before);
  lines.push(
    ...table([
      ['SERVICE', 'STATE', 'RATE', 'CPU', 'RSS', 'DEAD LETTERS', 'DETAILS'],
      ...rows.map((row) => [row.name, row.state, row.throughput, row.cpu, row.rss, row.deadLetters, row.details]),
    ]).map((line, index) => (index > 0 && rows[index - 1].state === 'down' ? red(line, options.color) : line)),
  );

  lines.push('', bold('STREAMS AND CONSUMER LAG (messages not yet delivered / awaiting ack)', options.color));
  if (now.streamsError) lines.push(red(`  cannot read the streams: ${now.streamsError}`, options.color));
  for (const stream of now.streams ?? []) {
    if (!stream.exists) {
      lines.push(`  ${stream.stream}: not provisioned yet`);
      continue;
    }
    lines.push(`  ${stream.stream}: ${integer.format(stream.messages)} messages, ${(stream.bytes / 2 ** 20).toFixed(1)} MiB`);
    for (const consumer of stream.consumers.filter((candidate) => candidate.durable)) {
      lines.push(`    ${consumer.name.padEnd(34)} lag ${integer.format(consumer.pending)}, awaiting ack ${integer.format(consumer.ackPending)}`);
    }
    // Ordered readers (the windower's partitions, the ingestor's duplicate index) have generated names: one line for all.
    const readers = stream.consumers.filter((candidate) => !candidate.durable);
    if (readers.length > 0) {
      const worst = Math.max(...readers.map((reader) => reader.pending));
      lines.push(`    ${`${readers.length} ordered reader(s)`.padEnd(34)} lag at most ${integer.format(worst)}`);
    }
  }

  const deadLetterSubjects = Object.entries(now.streams?.find((stream) => stream.stream === 'TOLL_DLQ')?.subjects ?? {});
  lines.push('', bold('ERRORS: DEAD LETTERS BY SOURCE (tollstream status; nothing is dropped)', options.color));
  if (deadLetterSubjects.length === 0) lines.push('  none');
  for (const [subject, count] of deadLetterSubjects.sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`  ${subject.padEnd(34)} ${integer.format(count)}`);
  }

  for (const [title, spending] of [['LATEST TRAFFIC ALERTS (operations)', false], ['LATEST SPENDING ALERTS (customers)', true]] as const) {
    const ofKind = now.alerts.filter((recent) => (recent.alert.spendingThresholdBreached !== undefined) === spending);
    lines.push('', bold(title, options.color));
    if (ofKind.length === 0) lines.push('  none yet');
    for (const recent of ofKind.slice(-options.maxAlerts).reverse()) {
      const raisedAt = recent.alert.raisedAt ?? new Date(recent.receivedAt);
      lines.push(`  ${raisedAt.toISOString().slice(11, 19)} UTC  ${describeAlert(recent.alert)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
