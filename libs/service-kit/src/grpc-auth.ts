import { createHash, timingSafeEqual } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';

/** The token of an `authorization: Bearer <token>` metadata entry, or undefined when there is none. */
export function bearerTokenFrom(metadata: grpc.Metadata): string | undefined {
  for (const value of metadata.get('authorization')) {
    const text = typeof value === 'string' ? value : value.toString('utf8');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(text.trim());
    if (match) return match[1];
  }
  return undefined;
}

/**
 * Compares secrets without leaking through timing where they differ. Hashing first gives equal-length
 * inputs, which timingSafeEqual requires, and hides the length of the expected secret.
 */
export function constantTimeEquals(a: string, b: string): boolean {
  const digestA = createHash('sha256').update(a, 'utf8').digest();
  const digestB = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(digestA, digestB);
}
