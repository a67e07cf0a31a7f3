import { maxInstantMs } from './zone-clock';

/** Durations are capped (about 3,000 years) so that sums such as end + lateness stay exact doubles. */
export const maxDurationMs = 100_000_000_000_000;

/** Largest subKeyCount accepted. */
export const maxSubKeyCount = 1024;

export function checkDuration(name: string, value: unknown, zeroAllowed: boolean): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (zeroAllowed ? 0 : 1) || value > maxDurationMs) {
    const range = zeroAllowed ? '0' : '1';
    throw new Error(`${name} must be an integer number of ms from ${range} to ${maxDurationMs} (got ${String(value)})`);
  }
}

export function checkInstant(name: string, t: number): void {
  if (!Number.isSafeInteger(t) || t < -maxInstantMs || t > maxInstantMs) {
    throw new RangeError(`${name} must be an integer number of ms within ±${maxInstantMs} (got ${t})`);
  }
}
