export interface WaitForOptions {
  /** Give up after this long (default 10 000 ms). */
  timeoutMs?: number;
  /** Pause between probes (default 100 ms). */
  intervalMs?: number;
  /** What is being waited for, used in the timeout error. */
  description?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Polls `probe` until it returns (or resolves to) a truthy value and returns that value.
 * A probe that throws counts as "not yet"; the last error is included in the timeout message.
 * Each probe call is awaited before the next one starts (no overlapping probes).
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 100;
  const description = options.description ?? 'condition';
  const startedAt = Date.now();
  const deadline = startedAt + timeoutMs;
  let attempts = 0;
  let lastError: unknown;
  let lastValue: unknown;

  for (;;) {
    attempts += 1;
    try {
      const value = await probe();
      if (value) return value;
      lastValue = value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    await sleep(Math.min(intervalMs, remaining));
  }

  const detail =
    lastError === undefined ? `last result: ${String(lastValue)}` : `last error: ${describeError(lastError)}`;
  throw new Error(
    `waitFor timed out after ${Date.now() - startedAt} ms (${attempts} attempts) waiting for ${description}; ${detail}`,
    lastError === undefined ? undefined : { cause: lastError },
  );
}
