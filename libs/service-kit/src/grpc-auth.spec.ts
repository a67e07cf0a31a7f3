import * as grpc from '@grpc/grpc-js';
import { bearerTokenFrom, constantTimeEquals } from './grpc-auth';

describe('bearerTokenFrom', () => {
  it('reads the token of an authorization: Bearer entry', () => {
    const metadata = new grpc.Metadata();
    expect(bearerTokenFrom(metadata)).toBeUndefined();
    metadata.set('authorization', 'Basic abc');
    expect(bearerTokenFrom(metadata)).toBeUndefined();
    metadata.set('authorization', 'Bearer s3cr3t-token');
    expect(bearerTokenFrom(metadata)).toBe('s3cr3t-token');
    metadata.set('authorization', 'bearer   other ');
    expect(bearerTokenFrom(metadata)).toBe('other');
    metadata.set('authorization', 'Bearer ');
    expect(bearerTokenFrom(metadata)).toBeUndefined();
  });
});

describe('constantTimeEquals', () => {
  it('compares strings of any length', () => {
    expect(constantTimeEquals('token-a', 'token-a')).toBe(true);
    expect(constantTimeEquals('token-a', 'token-b')).toBe(false);
    expect(constantTimeEquals('short', 'a much longer token')).toBe(false);
    expect(constantTimeEquals('', '')).toBe(true);
  });
});
