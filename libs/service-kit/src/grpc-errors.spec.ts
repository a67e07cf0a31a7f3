import * as grpc from '@grpc/grpc-js';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadServiceToken } from './config';
import { grpcStatusError, hasServiceCredential, InvalidArgumentError } from './grpc-errors';

describe('gRPC errors and service credentials', () => {
  it('builds status errors and field errors', () => {
    const error = grpcStatusError(grpc.status.INVALID_ARGUMENT, 'page_size: too big');
    expect([error.code, error.details, error.message]).toEqual([grpc.status.INVALID_ARGUMENT, 'page_size: too big', 'page_size: too big']);
    const invalid = new InvalidArgumentError('threshold.currency', 'must be USD');
    expect([invalid.field, invalid.message]).toEqual(['threshold.currency', 'threshold.currency: must be USD']);
  });

  it('accepts only the configured bearer token', () => {
    const metadata = (value?: string) => {
      const m = new grpc.Metadata();
      if (value) m.set('authorization', value);
      return m;
    };
    expect(hasServiceCredential(metadata('Bearer secret-token-0123456789'), 'secret-token-0123456789')).toBe(true);
    expect(hasServiceCredential(metadata('Bearer wrong'), 'secret-token-0123456789')).toBe(false);
    expect(hasServiceCredential(metadata(), 'secret-token-0123456789')).toBe(false);
  });

  it('reads a service token from its file, or takes the value, and names the variable when it cannot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'token-'));
    writeFileSync(join(dir, 'good'), 'file-token-0123456789\n');
    writeFileSync(join(dir, 'short'), 'short');
    expect(loadServiceToken(join(dir, 'good'), undefined, 'X_API_TOKEN_FILE')).toBe('file-token-0123456789');
    expect(loadServiceToken(undefined, 'value-token-0123456789', 'X_API_TOKEN_FILE')).toBe('value-token-0123456789');
    expect(() => loadServiceToken(join(dir, 'short'), undefined, 'X_API_TOKEN_FILE')).toThrow(/X_API_TOKEN_FILE .*at least 16 characters/);
    expect(() => loadServiceToken(join(dir, 'missing'), undefined, 'X_API_TOKEN_FILE')).toThrow(ConfigError);
    expect(() => loadServiceToken(undefined, undefined, 'X_API_TOKEN_FILE')).toThrow(/X_API_TOKEN_FILE: required \(or the token itself in X_API_TOKEN\)/);
  });
});
