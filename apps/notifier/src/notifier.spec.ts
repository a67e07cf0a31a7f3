/**
 * The notifier as it runs in production (its own process, configured by environment) on a real
 * nats-server, with real local HTTP receivers for the webhooks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Alert, Streams } from '@tollstream/contracts';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verifyWebhookSignature } from '@tollstream/notifications';
import { readDeadLetters, startNats, startService, tempDir, waitFor, type NatsHandle, type ServiceProcess, type TempDirHandle } from '@tollstream/testing';
import { notificationClient, publishAlert, sleep, spendingAlert, startReceiver, TOKEN, trafficAlert } from './__fixtures__/notifier-fixtures';

const OPS_SECRET = 'ops-webhook-secret-0123456789';
const OTHER_SECRET = 'other-webhook-secret-0123456789';

let nats: NatsHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let dir: TempDirHandle;
let notifier: ServiceProcess | undefined;
const receivers: Array<Awaited<ReturnType<typeof startReceiver>>> = [];
let ops: Awaited<ReturnType<typeof startReceiver>>;
let failing: Awaited<ReturnType<typeof startReceiver>>;
let hanging: Awaited<ReturnType<typeof startReceiver>>;
let flaky: Awaited<ReturnType<typeof startReceiver>>;
let env: NodeJS.ProcessEnv;

const running = (): ServiceProcess => {
  if (!notifier) throw new Error('the notifier is not running');
  return notifier;
};

const start = () =>
  startService({ app: 'notifier', env, grpcPortVariable: 'NOTIFIER_GRPC_PORT', httpPortVariable: 'NOTIFIER_HTTP_PORT' });

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await provisionTopology(jsm, declareTopology());
  dir = await tempDir('notifier-spec');
  ops = await startReceiver(() => 200);
  failing = await startReceiver(() => 500);
  hanging = await startReceiver(() => 'hang');
  flaky = await startReceiver((_request, index) => (index < 2 ? 503 : 204));
  receivers.push(ops, failing, hanging, flaky);
  const secretFile = join(dir.path, 'ops-secret');
  writeFileSync(secretFile, `${OPS_SECRET}\n`);
  const webhooksFile = join(dir.path, 'webhooks.json');
  writeFileSync(
    webhooksFile,
    JSON.stringify([
      { name: 'operations', url: ops.url, secretFile, alertKinds: ['traffic'], stations: ['ST-1', 'ST-2'] },
      { name: 'failing', url: failing.url, secretEnv: 'OTHER_SECRET', alertKinds: ['traffic'], stations: ['ST-9'] },
      { name: 'hanging', url: hanging.url, secretEnv: 'OTHER_SECRET', alertKinds: ['traffic'], stations: ['ST-8'], timeoutMs: 300 },
      { name: 'crm', url: flaky.url, secretEnv: 'OTHER_SECRET', alertKinds: ['spending'] },
    ]),
  );
  env = {
    NATS_URL: nats.url,
    NOTIFICATION_API_TOKEN: TOKEN,
    NOTIFIER_WEBHOOKS_FILE: webhooksFile,
    OTHER_SECRET,
    NOTIFIER_WEBHOOK_ATTEMPTS: '4',
    NOTIFIER_WEBHOOK_BACKOFF_BASE: '50ms',
    NOTIFIER_WEBHOOK_BACKOFF_MAX: '200ms',
    NOTIFIER_ACK_WAIT: '3s',
    LOG_LEVEL: 'info',
  };
  notifier = await start();
}, 90_000);

afterAll(async () => {
  await notifier?.stop();
  await Promise.all(receivers.map((receiver) => receiver.close()));
  await nc?.close();
  await nats?.stop();
  await dir?.remove();
}, 30_000);

describe('notifier webhooks', () => {
  it('delivers routed alerts with a signature receivers can verify, and the alert id as idempotency key', async () => {
    await publishAlert(js, trafficAlert('ST-1', 0));
    await publishAlert(js, trafficAlert('ST-5', 0)); // no target takes station ST-5
    await waitFor(() => ops.requests.length >= 1, { timeoutMs: 15_000 });
    await sleep(500);
    expect(ops.requests).toHaveLength(1);
    const [request] = ops.requests;
    const signature = request.headers[SIGNATURE_HEADER.toLowerCase()] as string;
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(OPS_SECRET, signature, request.body)).toEqual({ ok: true, timestampSeconds: expect.any(Number) });
    expect(verifyWebhookSignature(OTHER_SECRET, signature, request.body).ok).toBe(false);
    expect(verifyWebhookSignature(OPS_SECRET, signature, request.body.replace('ST-1', 'ST-2')).ok).toBe(false);
    const body = JSON.parse(request.body);
    expect(body).toMatchObject({ id: trafficAlert('ST-1', 0).alertId, kind: 'traffic', alert: { stationTraffic: { stationId: 'ST-1', vehicleCount: 12 } } });
    expect(request.headers[IDEMPOTENCY_HEADER.toLowerCase()]).toBe(body.id);
    expect(request.headers['content-type']).toBe('application/json');
  }, 30_000);

  it('retries a receiver that fails (HTTP 500, timeouts) and finally dead-letters with the reason and a metric', async () => {
    await publishAlert(js, trafficAlert('ST-9', 1));
    await publishAlert(js, trafficAlert('ST-8', 1));
    const letters = await waitFor(
      async () => {
        const found = (await readDeadLetters(jsm, 'tolls.dlq.notifier')).filter((letter) => letter.reasonCode === 'WEBHOOK_FAILED');
        return found.length >= 2 ? found : undefined;
      },
      { timeoutMs: 20_000, description: 'two webhook dead letters' },
    );
    expect(failing.requests).toHaveLength(4);
    expect(hanging.requests).toHaveLength(4);
    expect(failing.requests.map((r) => r.headers['tollstream-attempt'])).toEqual(['1', '2', '3', '4']);
    // Backoff between attempts (exponential, full jitter: between 0 and the cap).
    const reasons = letters.map((letter) => letter.reason).sort();
    expect(reasons[0]).toMatch(/^webhook failing: HTTP 500 \(4 attempts\)$/);
    expect(reasons[1]).toMatch(/^webhook hanging: timeout after 300 ms \(4 attempts\)$/);
    expect(Alert.decode((letters.find((l) => l.reason.startsWith('webhook failing')) ?? letters[0]).original).alertId).toBe(trafficAlert('ST-9', 1).alertId);
    const metrics = await (await fetch(`http://127.0.0.1:${running().httpPort}/metrics`)).text();
    expect(metrics).toMatch(/tollstream_dead_letters_total\{reason="WEBHOOK_FAILED",service="notifier"\} 2/);
    expect(metrics).toMatch(/tollstream_notifier_webhook_deliveries_total\{target="failing",outcome="dead-lettered",service="notifier"\} 1/);
    // Secrets are never in the logs.
    expect(running().process.output()).not.toContain(OPS_SECRET);
    expect(running().process.output()).not.toContain(OTHER_SECRET);
  }, 40_000);
});

describe('notifier crash', () => {
  it('SIGKILL mid-stream: no duplicate and no lost notification (inbox, live subscriber, webhooks)', async () => {
    const accounts = ['acct-k0', 'acct-k1', 'acct-k2', 'acct-k3'];
    const total = 400;
    const api = notificationClient(`127.0.0.1:${running().grpcPort}`);
    const before = accounts.map((account) => api.subscribe(account));
    await sleep(300);
    const publishing = (async () => {
      for (let i = 1; i <= total; i++) {
        await publishAlert(js, spendingAlert(accounts[i % accounts.length], i));
        if (i % 25 === 0) await sleep(5);
      }
    })();
    await waitFor(() => before.reduce((sum, s) => sum + s.received.length, 0) >= 60, { timeoutMs: 20_000 });
    await running().kill('SIGKILL');
    await publishing;
    const seenBefore = before.map((s) => s.ids());
    expect(seenBefore.flat().length).toBeLessThan(total); // the crash really was mid-stream
    api.close();

    notifier = await start();
    const api2 = notificationClient(`127.0.0.1:${notifier.grpcPort}`);
    const after = accounts.map((account, index) => api2.subscribe(account, seenBefore[index].length ? String(seenBefore[index].at(-1)) : ''));
    await waitFor(() => after.reduce((sum, s) => sum + s.received.length, 0) + seenBefore.flat().length >= total, { timeoutMs: 30_000, description: 'every notification after the restart' });
    await sleep(500);
    for (const [index, account] of accounts.entries()) {
      const ids = [...seenBefore[index], ...after[index].ids()];
      const expected = total / accounts.length;
      expect(ids).toEqual(Array.from({ length: expected }, (_, i) => i + 1)); // gap-free, no repeat
      const listed = await api2.list({ accountId: account, pageSize: 100 });
      expect(listed.notifications).toHaveLength(expected);
      expect(new Set(listed.notifications.map((n) => n.alertId)).size).toBe(expected);
    }
    after.forEach((s) => s.cancel());
    api2.close();
    // The spending webhook (crm): every alert delivered at least once; re-sends carry the same idempotency key.
    await waitFor(() => new Set(flaky.requests.filter((r) => r.headers['tollstream-attempt']).map((r) => r.headers[IDEMPOTENCY_HEADER.toLowerCase()])).size >= total, {
      timeoutMs: 30_000,
      description: 'every spending alert at the crm webhook',
    });
    const info = await jsm.consumers.info(Streams.alerts, 'notifier-inbox');
    expect(info.num_pending + info.num_ack_pending).toBe(0);
  }, 90_000);
});
