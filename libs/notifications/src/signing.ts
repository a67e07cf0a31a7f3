import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header carrying the signature of a webhook request. */
export const SIGNATURE_HEADER = 'Tollstream-Signature';
/** Header carrying the alert id: the same for every attempt and every re-send, for receivers to deduplicate. */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/** hex(HMAC-SHA256(secret, "<t>.<body>")). */
export function webhookSignature(secret: string, timestampSeconds: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.${body}`, 'utf8').digest('hex');
}

/** The header value: `t=<unix seconds>,v1=<hex signature>`. */
export function signatureHeader(secret: string, timestampSeconds: number, body: string): string {
  return `t=${timestampSeconds},v1=${webhookSignature(secret, timestampSeconds, body)}`;
}

export type VerificationResult = { ok: true; timestampSeconds: number } | { ok: false; reason: string };

/**
 * What a receiver does (docs/notifications.md): parse the header, recompute the HMAC over the raw
 * body bytes as received, compare in constant time, reject timestamps outside the tolerance
 * (replayed requests). Several v1= values (secret rotation) are accepted.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string,
  options: { toleranceSeconds?: number; nowSeconds?: number } = {},
): VerificationResult {
  if (!header) return { ok: false, reason: 'no signature header' };
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === 't' && /^\d+$/.test(value ?? '')) timestamp = Number(value);
    else if (key === 'v1' && value) signatures.push(value);
  }
  if (timestamp === undefined || signatures.length === 0) return { ok: false, reason: 'malformed signature header' };
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? 300)) return { ok: false, reason: 'timestamp outside the tolerance' };
  const expected = Buffer.from(webhookSignature(secret, timestamp, body), 'hex');
  const matches = signatures.some((signature) => {
    const given = Buffer.from(signature, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return matches ? { ok: true, timestampSeconds: timestamp } : { ok: false, reason: 'signature mismatch' };
}
