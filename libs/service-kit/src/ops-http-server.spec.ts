import { createLogger } from './logger';
import { Counter, createMetricsRegistry } from './metrics';
import { startOpsHttpServer, type OpsHttpServer } from './ops-http-server';

const logger = createLogger({ service: 'ops-test', level: 'silent' });

describe('startOpsHttpServer', () => {
  let ready = false;
  let server: OpsHttpServer;
  let base: string;
  const registry = createMetricsRegistry('ops-test');
  const accepted = new Counter({
    name: 'tollstream_transactions_accepted_total',
    help: 'Transactions accepted',
    registers: [registry],
  });

  beforeAll(async () => {
    server = await startOpsHttpServer({ host: '127.0.0.1', port: 0, registry, isReady: () => ready, logger });
    base = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server.close());

  it('binds a free port when given 0', () => {
    expect(server.port).toBeGreaterThan(0);
  });

  it('serves Prometheus text with registered and default metrics labelled with the service', async () => {
    accepted.inc(7);
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(registry.contentType);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const body = await response.text();
    expect(body).toContain('# TYPE tollstream_transactions_accepted_total counter');
    expect(body).toContain('tollstream_transactions_accepted_total{service="ops-test"} 7');
    expect(body).toMatch(/^process_cpu_user_seconds_total\{service="ops-test"\} /m);
    expect(body).toContain('nodejs_heap_size_used_bytes');
  });

  it('answers /healthz with 200 while alive', async () => {
    const response = await fetch(`${base}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers /readyz with 503 until ready, then 200', async () => {
    const before = await fetch(`${base}/readyz`);
    expect(before.status).toBe(503);
    expect(before.headers.get('content-type')).toContain('application/json');
    expect(await before.json()).toEqual({ status: 'not ready' });

    ready = true;
    const after = await fetch(`${base}/readyz`);
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ status: 'ready' });
  });

  it('treats a failing readiness check as not ready', async () => {
    const failing = await startOpsHttpServer({
      host: '127.0.0.1',
      port: 0,
      registry,
      isReady: () => Promise.reject(new Error('nats down')),
      logger,
    });
    try {
      expect((await fetch(`http://127.0.0.1:${failing.port}/readyz`)).status).toBe(503);
    } finally {
      await failing.close();
    }
  });

  it('answers unknown paths with 404 and other methods with 405', async () => {
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    await missing.text();
    const posted = await fetch(`${base}/metrics`, { method: 'POST' });
    expect(posted.status).toBe(405);
    await posted.text();
  });

  it('rejects when the port is taken', async () => {
    await expect(
      startOpsHttpServer({ host: '127.0.0.1', port: server.port, registry, isReady: () => true, logger }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
