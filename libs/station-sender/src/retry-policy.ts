import { status as GrpcStatus } from '@grpc/grpc-js';

export interface RetryPolicy {
  /** Attempts per batch, the first one included. When records are still pending after the last one, the run fails. */
  maxAttempts: number;
  /** Delay before the first retry. */
  initialDelayMs: number;
  /** Upper bound of any delay. */
  maxDelayMs: number;
  /** Growth of the delay per attempt. */
  multiplier: number;
  /**
   * Upper bound of a delay the ingestor asks for (google.rpc.RetryInfo): honoured up to this, so that a
   * misconfigured server cannot park a station's run for hours.
   */
  maxAskedDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 8,
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  multiplier: 2,
  maxAskedDelayMs: 60_000,
};

/** Share of an asked-for delay added at random on top, so that stations refused together do not all come back together. */
export const ASKED_DELAY_JITTER = 0.1;

/**
 * Delay before retry number `retry` (1 = the first retry): exponential, capped, with "equal
 * jitter" — half of the step is fixed, the other half random — so that many stations retrying
 * after the same outage spread out while none of them hammers the ingestor with zero waits.
 */
export function backoffDelayMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** Math.max(0, retry - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/**
 * Delay before retry number `retry` (1 = the first retry). When the server said when to retry
 * (`askedDelayMs`, from google.rpc.RetryInfo), at least that long (capped at `maxAskedDelayMs`) plus
 * up to 10 % jitter; otherwise the exponential backoff, which is the fallback RetryInfo's own
 * specification recommends.
 */
export function retryDelayMs(policy: RetryPolicy, retry: number, askedDelayMs: number | undefined, random: () => number = Math.random): number {
  if (askedDelayMs === undefined || !Number.isFinite(askedDelayMs) || askedDelayMs < 0) return backoffDelayMs(policy, retry, random);
  const asked = Math.min(askedDelayMs, policy.maxAskedDelayMs);
  return Math.round(asked + random() * asked * ASKED_DELAY_JITTER);
}

/** gRPC status codes after which the same batch is sent again (the ingestor deduplicates retries). */
export const retryableStatusCodes: ReadonlySet<GrpcStatus> = new Set([
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.RESOURCE_EXHAUSTED,
]);

export function isRetryableStatus(code: GrpcStatus | undefined): boolean {
  return code !== undefined && retryableStatusCodes.has(code);
}

/** `UNAVAILABLE` for 14, the number itself when grpc-js does not know it. */
export function grpcStatusName(code: number | undefined): string {
  if (code === undefined) return 'UNKNOWN';
  return (GrpcStatus as unknown as Record<number, string | undefined>)[code] ?? String(code);
}

/** Waits `ms`, or rejects with an AbortError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolvePromise();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return Object.assign(new Error('the operation was aborted', { cause: reason }), { name: 'AbortError' });
}
