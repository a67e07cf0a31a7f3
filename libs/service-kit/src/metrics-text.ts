import { httpsGetText, type ClientTlsOptions } from './tls-client';
/** One sample of a Prometheus text exposition: `name{label="value",...} 12.5`. */
export interface MetricSample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Reads the samples of the text format our own services expose (prom-client). Comments (HELP,
 * TYPE) and lines that are not samples are ignored; the watch view only needs sums and values.
 */
export function parsePrometheusText(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(LABEL_PAIR)) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_all, escaped: string) => (escaped === 'n' ? '\n' : escaped));
    }
    samples.push({ name: match[1], labels, value });
  }
  return samples;
}

/** Sum of a metric's samples whose labels match `where`; undefined when the metric is absent. */
export function sumOf(samples: readonly MetricSample[], name: string, where: Readonly<Record<string, string>> = {}): number | undefined {
  let total: number | undefined;
  for (const sample of samples) {
    if (sample.name !== name) continue;
    if (!Object.entries(where).every(([label, value]) => sample.labels[label] === value)) continue;
    total = (total ?? 0) + sample.value;
  }
  return total;
}

/** Largest sample of a metric (e.g. the worst watermark lag over partitions). */
export function maxOf(samples: readonly MetricSample[], name: string): number | undefined {
  let largest: number | undefined;
  for (const sample of samples) {
    if (sample.name === name && (largest === undefined || sample.value > largest)) largest = sample.value;
  }
  return largest;
}

/**
 * Fetches and reads a service's Prometheus endpoint (e.g. http://127.0.0.1:9464/metrics). An https URL
 * with `tls` (a private CA, a client certificate, a server-name override) goes through node's https client (ADR 0017).
 */
export async function readMetrics(url: string, timeoutMs = 5_000, tls?: ClientTlsOptions): Promise<MetricSample[]> {
  if (url.startsWith('https:') && tls) {
    const { status, text } = await httpsGetText(url, tls, timeoutMs);
    if (status < 200 || status > 299) throw new Error(`${url} answered ${status}`);
    return parsePrometheusText(text);
  }
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return parsePrometheusText(await response.text());
}

/** Cumulative bucket counts of a histogram by upper bound (`le`), summed over its other labels, in bound order. */
export function histogramBuckets(samples: readonly MetricSample[], name: string): Array<{ le: number; count: number }> {
  const counts = new Map<number, number>();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket` || sample.labels['le'] === undefined) continue;
    const le = sample.labels['le'] === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels['le']);
    counts.set(le, (counts.get(le) ?? 0) + sample.value);
  }
  return [...counts].sort(([a], [b]) => a - b).map(([le, count]) => ({ le, count }));
}
