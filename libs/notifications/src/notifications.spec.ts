import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Alert } from '@tollstream/contracts';
import { inAppContentOf, formatMoney } from './notification-text';
import { loadWebhookTargets, targetsFor, type WebhookTarget } from './routing';
import { signatureHeader, verifyWebhookSignature, webhookSignature } from './signing';
import { backoffDelayMs, deliverWebhook, type RetryPolicy } from './webhook-delivery';

const SECRET = 'a-webhook-secret-of-some-length';

const traffic = (stationId: string): Alert => ({
  alertId: `traffic/${stationId}/x`,
  raisedAt: new Date(0),
  spendingThresholdBreached: undefined,
  stationTraffic: { stationId, slotStart: undefined, slotEnd: undefined, timeZone: 'UTC', condition: 1, vehicleCount: 3, expectedMinimum: 100, expectedMaximum: 0, referenceVersion: 'r' },
});
const spending = (accountId: string): Alert => ({
  alertId: `spending/${accountId}/2026-11/v1`,
  raisedAt: new Date(0),
  stationTraffic: undefined,
  spendingThresholdBreached: { accountId, month: '2026-11', timeZone: 'UTC', thresholdMinor: 5_000, totalMinor: 5_125, currency: 'EUR', breachedAt: undefined },
});

describe('webhook signature', () => {
  it('is HMAC-SHA256 over "<t>.<body>" and verifies; tampering, a wrong secret or an old timestamp do not', () => {
    // Reference value computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'a-webhook-secret-of-some-length'
    expect(webhookSignature(SECRET, 1_700_000_000, '{"a":1}')).toBe('e4755f85e0f052f5944f60e73563291283cf7be25d9ee6ae394b5fd59c8247c5');
    const header = signatureHeader(SECRET, 1_700_000_000, '{"a":1}');
    expect(verifyWebhookSignature(SECRET, header, '{"a":1}', { nowSeconds: 1_700_000_100 })).toEqual({ ok: true, timestampSeconds: 1_700_000_000 });
    expect(verifyWebhookSignature(SECRET, header, '{"a":2}', { nowSeconds: 1_700_000_100 })).toMatchObject({ ok: false, reason: 'signature mismatch' });
    expect(verifyWebhookSignature('another-secret-entirely', header, '{"a":1}', { nowSeconds: 1_700_000_100 }).ok).toBe(false);
    expect(verifyWebhookSignature(SECRET, header, '{"a":1}', { nowSeconds: 1_700_001_000 })).toMatchObject({ ok: false, reason: 'timestamp outside the tolerance' });
    expect(verifyWebhookSignature(SECRET, 'v1=abc', '{"a":1}').ok).toBe(false);
    expect(verifyWebhookSignature(SECRET, undefined, '{"a":1}').ok).toBe(false);
    // Rotation: any of several v1 values may match.
    const rotated = `${header},v1=${'0'.repeat(64)}`;
    expect(verifyWebhookSignature(SECRET, rotated, '{"a":1}', { nowSeconds: 1_700_000_000 }).ok).toBe(true);
  });
});

describe('routing', () => {
  const target = (name: string, alertKinds: WebhookTarget['alertKinds'], stations?: string[]): WebhookTarget => ({ name, url: 'http://x', secret: SECRET, alertKinds, stations });
  it('matches alert kind and, when listed, the station', () => {
    const targets = [target('ops', ['traffic']), target('north', ['traffic'], ['ST-1']), target('crm', ['spending'])];
    expect(targetsFor(traffic('ST-1'), targets).map((t) => t.name)).toEqual(['ops', 'north']);
    expect(targetsFor(traffic('ST-2'), targets).map((t) => t.name)).toEqual(['ops']);
    expect(targetsFor(spending('a'), targets).map((t) => t.name)).toEqual(['crm']);
  });

  it('loads targets, resolving secrets from files or the environment, and names problems without secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'webhooks-'));
    writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
    const file = join(dir, 'hooks.json');
    writeFileSync(file, JSON.stringify([{ name: 'ops', url: 'https://ops.example/hook', secretFile: join(dir, 'secret'), alertKinds: ['traffic'], stations: ['ST-1'] }, { name: 'crm', url: 'http://crm:8080/h', secretEnv: 'CRM_SECRET', alertKinds: ['spending'] }]));
    const targets = loadWebhookTargets(file, { CRM_SECRET: 'crm-secret-0123456789' });
    expect(targets.map((t) => [t.name, t.secret])).toEqual([
      ['ops', SECRET],
      ['crm', 'crm-secret-0123456789'],
    ]);
    expect(() => loadWebhookTargets(file, {})).toThrow(/webhook crm: environment variable CRM_SECRET is not set/);
    expect(() => loadWebhookTargets(file, { CRM_SECRET: 'short' })).toThrow(/at least 16/);
    writeFileSync(file, JSON.stringify([{ name: 'x', url: 'ftp://nope', secretEnv: 'S', alertKinds: [] }]));
    expect(() => loadWebhookTargets(file, {})).toThrow(/\[0\.url\].*\[0\.alertKinds\]/s);
    writeFileSync(file, JSON.stringify([{ name: 'x', url: 'http://a', secretEnv: 'S', secretFile: '/f', alertKinds: ['traffic'] }]));
    expect(() => loadWebhookTargets(file, {})).toThrow(/exactly one of secretFile and secretEnv/);
  });
});

describe('backoff', () => {
  it('is exponential with full jitter, capped', () => {
    const policy: RetryPolicy = { attempts: 6, timeoutMs: 1_000, baseDelayMs: 500, maxDelayMs: 4_000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelayMs(policy, n, () => 0.999_999))).toEqual([499, 999, 1_999, 3_999, 3_999]);
    expect(backoffDelayMs(policy, 3, () => 0)).toBe(0);
  });
});

describe('deliverWebhook', () => {
  it('does not retry a request the receiver rejects (4xx), retries 429', async () => {
    const statuses = [400, 429, 200];
    let calls = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(statuses[Math.min(calls++, 2)]).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    const policy: RetryPolicy = { attempts: 3, timeoutMs: 1_000, baseDelayMs: 1, maxDelayMs: 5 };
    const target: WebhookTarget = { name: 't', url, secret: SECRET, alertKinds: ['traffic'] };
    expect(await deliverWebhook(target, traffic('ST-1'), policy)).toEqual({ delivered: false, attempts: 1, status: 400, reason: 'HTTP 400 (not retryable)' });
    expect(await deliverWebhook(target, traffic('ST-1'), policy)).toEqual({ delivered: true, attempts: 2, status: 200 });
    server.close();
  });
});

describe('in-app content', () => {
  it('is for spending alerts only, with money in the currency format', () => {
    expect(inAppContentOf(traffic('ST-1'))).toBeUndefined();
    expect(inAppContentOf(spending('acct-1'))).toMatchObject({ accountId: 'acct-1', title: 'Monthly spending threshold reached' });
    expect(inAppContentOf(spending('acct-1'))?.body).toContain('€51.25');
    expect(formatMoney(1_500, 'JPY')).toBe('¥1,500');
  });
});
