import { Alert } from '@tollstream/contracts';
import { alertKindOf, type WebhookTarget } from './routing';
import { IDEMPOTENCY_HEADER, signatureHeader, SIGNATURE_HEADER } from './signing';

export interface RetryPolicy {
  /** Attempts in all (first one included). */
  attempts: number;
  /** Timeout of one attempt (AbortSignal.timeout), unless the target sets its own. */
  timeoutMs: number;
  /** Backoff before attempt n+1: random in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))] ("full jitter"). */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { attempts: 6, timeoutMs: 5_000, baseDelayMs: 500, maxDelayMs: 30_000 };

/** Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */
export function backoffDelayMs(policy: RetryPolicy, failedAttempts: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failedAttempts - 1));
  return Math.floor(random() * cap);
}

export interface DeliveryOutcome {
  delivered: boolean;
  attempts: number;
  /** Why the last attempt failed (no secrets, no response bodies). */
  reason?: string;
  status?: number;
}

/** The JSON body: stable for an alert (same bytes on every attempt, only the signature timestamp changes). */
export function webhookBody(alert: Alert): string {
  return JSON.stringify({ id: alert.alertId, kind: alertKindOf(alert) ?? 'unknown', alert: Alert.toJSON(alert) });
}

/** 4xx other than these means the receiver rejects the request itself: retrying cannot help. */
const RETRYABLE_CLIENT_ERRORS = new Set([408, 409, 425, 429]);

/**
 * POSTs the alert to the target, retrying failures (network errors, timeouts, 5xx, 408/409/425/429)
 * with exponential backoff and full jitter, up to policy.attempts. Every attempt is signed anew
 * (fresh timestamp) and carries the alert id as idempotency key.
 */
export async function deliverWebhook(
  target: WebhookTarget,
  alert: Alert,
  policy: RetryPolicy,
  hooks: { onAttempt?: (result: 'ok' | 'error', attempt: number, detail: string) => void; sleep?: (ms: number) => Promise<void>; heartbeat?: () => void } = {},
): Promise<DeliveryOutcome> {
  const body = webhookBody(alert);
  const sleep = hooks.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let last: DeliveryOutcome = { delivered: false, attempts: 0 };
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    hooks.heartbeat?.();
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tollstream-notifier',
          [SIGNATURE_HEADER]: signatureHeader(target.secret, timestamp, body),
          [IDEMPOTENCY_HEADER]: alert.alertId,
          'Tollstream-Attempt': String(attempt),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(target.timeoutMs ?? policy.timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined); // release the connection
      if (response.status >= 200 && response.status < 300) {
        hooks.onAttempt?.('ok', attempt, String(response.status));
        return { delivered: true, attempts: attempt, status: response.status };
      }
      last = { delivered: false, attempts: attempt, status: response.status, reason: `HTTP ${response.status}` };
      hooks.onAttempt?.('error', attempt, last.reason as string);
      if (response.status < 500 && !RETRYABLE_CLIENT_ERRORS.has(response.status)) {
        return { ...last, reason: `HTTP ${response.status} (not retryable)` };
      }
    } catch (error) {
      const name = (error as Error)?.name;
      const reason = name === 'TimeoutError' || name === 'AbortError' ? `timeout after ${target.timeoutMs ?? policy.timeoutMs} ms` : `network error: ${(error as Error)?.message ?? String(error)}`;
      last = { delivered: false, attempts: attempt, reason };
      hooks.onAttempt?.('error', attempt, reason);
    }
    if (attempt < policy.attempts) await sleep(backoffDelayMs(policy, attempt));
  }
  return last;
}
