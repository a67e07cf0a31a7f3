import { status } from '@grpc/grpc-js';
import { backoffDelayMs, defaultRetryPolicy, grpcStatusName, isRetryableStatus, retryDelayMs, sleep, type RetryPolicy } from './retry-policy';

const policy: RetryPolicy = { maxAttempts: 8, initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, maxAskedDelayMs: 5_000 };

describe('backoffDelayMs', () => {

  it('grows exponentially up to the cap (jitter at its maximum)', () => {
    expect([1, 2, 3, 4, 5, 6].map((retry) => backoffDelayMs(policy, retry, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('keeps at least half of each step whatever the jitter draws', () => {
    expect([1, 2, 3, 4, 5].map((retry) => backoffDelayMs(policy, retry, () => 0))).toEqual([50, 100, 200, 400, 500]);
  });

  it('spreads delays between half and all of the step', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const delays = Array.from({ length: 500 }, () => backoffDelayMs(policy, 3, random));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(200);
    expect(Math.max(...delays)).toBeLessThanOrEqual(400);
    expect(new Set(delays).size).toBeGreaterThan(50);
  });

  it('has defaults that give up within about half a minute', () => {
    let total = 0;
    for (let retry = 1; retry < defaultRetryPolicy.maxAttempts; retry += 1) total += backoffDelayMs(defaultRetryPolicy, retry, () => 1);
    expect(total).toBeLessThan(30_000);
    expect(total).toBeGreaterThan(5_000);
  });
});

describe('retryDelayMs', () => {
  it('waits at least the delay the server asked for, whatever the attempt, with at most 10 % on top', () => {
    for (const retry of [1, 4, 7]) {
      expect(retryDelayMs(policy, retry, 1_000, () => 0)).toBe(1_000);
      expect(retryDelayMs(policy, retry, 1_000, () => 1)).toBe(1_100);
    }
    // Above the backoff's own cap (1 s here): the server knows better when it will be back.
    expect(retryDelayMs(policy, 1, 2_500, () => 0.5)).toBe(2_625);
    expect(retryDelayMs(policy, 1, 0, () => 1)).toBe(0);
  });

  it('caps an asked-for delay at maxAskedDelayMs', () => {
    expect(retryDelayMs(policy, 1, 3_600_000, () => 0)).toBe(5_000);
    expect(retryDelayMs(policy, 1, 3_600_000, () => 1)).toBe(5_500);
  });

  it('falls back to the exponential backoff without a usable RetryInfo', () => {
    for (const asked of [undefined, Number.NaN, -5]) {
      expect([1, 2, 3, 4, 5].map((retry) => retryDelayMs(policy, retry, asked, () => 1))).toEqual([100, 200, 400, 800, 1000]);
    }
  });

  it('has a default cap of a minute', () => {
    expect(defaultRetryPolicy.maxAskedDelayMs).toBe(60_000);
  });
});

describe('isRetryableStatus', () => {
  it.each([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED])('retries %s', (code) => {
    expect(isRetryableStatus(code)).toBe(true);
  });

  it.each([status.UNAUTHENTICATED, status.INVALID_ARGUMENT, status.PERMISSION_DENIED, status.INTERNAL, status.UNIMPLEMENTED, undefined])(
    'does not retry %s',
    (code) => {
      expect(isRetryableStatus(code)).toBe(false);
    },
  );

  it('names status codes', () => {
    expect(grpcStatusName(status.UNAUTHENTICATED)).toBe('UNAUTHENTICATED');
    expect(grpcStatusName(99)).toBe('99');
  });
});

describe('sleep', () => {
  it('stops waiting as soon as the signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const waiting = sleep(10_000, controller.signal);
    setTimeout(() => controller.abort(), 20);
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
