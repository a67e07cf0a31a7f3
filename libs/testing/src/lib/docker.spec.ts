import { dockerAvailable, dockerConfiguredSync, resetDockerDetectionCache } from './docker';

describe('dockerAvailable', () => {
  afterEach(() => resetDockerDetectionCache());

  it('answers within 3 s and caches the answer', async () => {
    const started = Date.now();
    const first = await dockerAvailable();
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(typeof first).toBe('boolean');

    const again = Date.now();
    await expect(dockerAvailable()).resolves.toBe(first);
    expect(Date.now() - again).toBeLessThan(50);
  });

  it('is false at once when no socket, DOCKER_HOST or testcontainers config exists', async () => {
    if (dockerConfiguredSync()) return; // a machine with Docker configured: nothing to assert here
    const started = Date.now();
    await expect(dockerAvailable()).resolves.toBe(false);
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('TOLLSTREAM_DOCKER=0 forces the local fallbacks', async () => {
    const previous = process.env['TOLLSTREAM_DOCKER'];
    process.env['TOLLSTREAM_DOCKER'] = '0';
    try {
      expect(dockerConfiguredSync()).toBe(false);
      await expect(dockerAvailable()).resolves.toBe(false);
    } finally {
      if (previous === undefined) delete process.env['TOLLSTREAM_DOCKER'];
      else process.env['TOLLSTREAM_DOCKER'] = previous;
    }
  });
});
