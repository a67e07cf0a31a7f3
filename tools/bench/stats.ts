import { readFileSync } from 'node:fs';

/** Percentile of an unsorted sample (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Peak resident set size of a process (VmHWM), in MiB; undefined when /proc is not readable. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Quantile (0..1) of the observations between two readings of a cumulative histogram (service-kit
 * `histogramBuckets`), linearly interpolated inside a bucket; beyond the last finite bound it reports
 * that bound. `count` is the number of observations between the readings.
 */
export function histogramQuantile(
  before: ReadonlyArray<{ le: number; count: number }>,
  after: ReadonlyArray<{ le: number; count: number }>,
  q: number,
): { value: number; count: number } {
  const counts = after.map((bucket) => bucket.count - (before.find((earlier) => earlier.le === bucket.le)?.count ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return { value: Number.NaN, count: 0 };
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [i, bucket] of after.entries()) {
    if (counts[i] >= rank) {
      if (!Number.isFinite(bucket.le)) return { value: lower, count: total };
      const inBucket = counts[i] - below;
      return { value: inBucket > 0 ? lower + ((rank - below) / inBucket) * (bucket.le - lower) : bucket.le, count: total };
    }
    lower = bucket.le;
    below = counts[i];
  }
  return { value: lower, count: total };
}
