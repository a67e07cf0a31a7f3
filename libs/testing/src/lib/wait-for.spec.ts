import { waitFor } from './wait-for';

describe('waitFor', () => {
  it('returns the first truthy value the probe produces', async () => {
    let calls = 0;
    const value = await waitFor(
      async () => {
        calls += 1;
        return calls >= 3 ? { calls } : undefined;
      },
      { intervalMs: 5 },
    );
    expect(value).toEqual({ calls: 3 });
  });

  it('accepts synchronous probes', async () => {
    await expect(waitFor(() => 'ready')).resolves.toBe('ready');
  });

  it('treats a throwing probe as "not yet"', async () => {
    let calls = 0;
    const value = await waitFor(
      () => {
        calls += 1;
        if (calls < 3) throw new Error('table not there yet');
        return 42;
      },
      { intervalMs: 5 },
    );
    expect(value).toBe(42);
  });

  it('times out with the description and the last result', async () => {
    const started = Date.now();
    await expect(waitFor(() => false, { timeoutMs: 150, intervalMs: 20, description: 'the consumer to catch up' })).rejects.toThrow(
      /waitFor timed out after \d+ ms \(\d+ attempts\) waiting for the consumer to catch up; last result: false/,
    );
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('times out with the last error when the probe kept throwing', async () => {
    await expect(
      waitFor(
        () => {
          throw new Error('connection refused');
        },
        { timeoutMs: 60, intervalMs: 10, description: 'ClickHouse' },
      ),
    ).rejects.toThrow(/waiting for ClickHouse; last error: connection refused/);
  });
});
