import { createFileRegistry, fromBinary, toJson } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';
import { fileDescriptorSetBase64, Status } from '@tollstream/contracts';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadServiceToken } from './config';
import {
  detailsOfStatus,
  grpcStatusError,
  hasServiceCredential,
  invalidArgumentError,
  InvalidArgumentError,
  retryLaterError,
  richStatus,
  STATUS_DETAILS_TRAILER,
  statusOfTrailers,
} from './grpc-errors';

// The descriptors buf compiled from proto/ (with the vendored google.rpc files), read by another
// protobuf runtime than the ts-proto code that encodes: the details must be standard wire format.
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(fileDescriptorSetBase64, 'base64')));
const statusAsJson = (bytes: Uint8Array) => {
  const schema = registry.getMessage('google.rpc.Status');
  if (!schema) throw new Error('google.rpc.Status is missing from the descriptor set');
  return toJson(schema, fromBinary(schema, bytes), { registry });
};

// A raw-bytes unary method: the request text picks the error the server answers with.
const identity = (value: Buffer): Buffer => value;
const failDefinition: grpc.ServiceDefinition = {
  fail: {
    path: '/test.v1.Fail/Fail',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

describe('gRPC errors and service credentials', () => {
  it('builds status errors and field errors', () => {
    const error = grpcStatusError(grpc.status.INVALID_ARGUMENT, 'page_size: too big');
    expect([error.code, error.details, error.message]).toEqual([grpc.status.INVALID_ARGUMENT, 'page_size: too big', 'page_size: too big']);
    const invalid = new InvalidArgumentError('threshold.currency', 'must be USD');
    expect([invalid.field, invalid.description, invalid.message]).toEqual(['threshold.currency', 'must be USD', 'threshold.currency: must be USD']);
    // Without details asked for, no trailer: a plain status.
    expect(error.metadata.get(STATUS_DETAILS_TRAILER)).toEqual([]);
  });

  it('puts field violations and retry delays in a google.rpc.Status that standard decoders read', () => {
    const invalid = invalidArgumentError([new InvalidArgumentError('threshold.currency', 'must be USD'), { field: 'account_id', description: 'is required' }]);
    expect([invalid.code, invalid.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'threshold.currency: must be USD; account_id: is required']);
    const [trailer] = invalid.metadata.get(STATUS_DETAILS_TRAILER);
    expect(trailer).toBeInstanceOf(Buffer);
    expect(statusAsJson(trailer as Buffer)).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      message: 'threshold.currency: must be USD; account_id: is required',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [
            { field: 'threshold.currency', description: 'must be USD' },
            { field: 'account_id', description: 'is required' },
          ],
        },
      ],
    });

    const unavailable = retryLaterError(grpc.status.UNAVAILABLE, 'the store is unavailable; retry', 2_500);
    expect(statusAsJson(unavailable.metadata.get(STATUS_DETAILS_TRAILER)[0] as Buffer)).toEqual({
      code: grpc.status.UNAVAILABLE,
      message: 'the store is unavailable; retry',
      details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '2.500s' }],
    });
    expect(detailsOfStatus(richStatus(grpc.status.RESOURCE_EXHAUSTED, 'busy', { retryDelayMs: 61_001 }))).toEqual({ retryDelayMs: 61_001 });
  });

  it('reads the details back from a status, ignoring detail types it does not know and matching the type name after the last slash', () => {
    const status = richStatus(grpc.status.INVALID_ARGUMENT, 'x', { fieldViolations: [{ field: 'a', description: 'b' }], retryDelayMs: 10 });
    const foreignPrefix = status.details.map((any) => ({ ...any, typeUrl: any.typeUrl.replace('type.googleapis.com', 'example.org/types') }));
    const unknown = { typeUrl: 'type.googleapis.com/google.rpc.DebugInfo', value: Buffer.from([10, 1, 120]) };
    expect(detailsOfStatus({ ...status, details: [unknown, ...foreignPrefix] })).toEqual({ fieldViolations: [{ field: 'a', description: 'b' }], retryDelayMs: 10 });
    expect(detailsOfStatus(Status.decode(Status.encode(status).finish()))).toEqual({ fieldViolations: [{ field: 'a', description: 'b' }], retryDelayMs: 10 });
    expect(statusOfTrailers(new grpc.Metadata())).toBeUndefined();
  });

  it('sends the details to a grpc-js client in the grpc-status-details-bin trailer', async () => {
    const server = new grpc.Server();
    server.addService(failDefinition, {
      fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        callback(
          call.request.toString() === 'invalid'
            ? invalidArgumentError({ field: 'page_size', description: 'must be at most 100' })
            : retryLaterError(grpc.status.UNAVAILABLE, 'the store is unavailable; retry'),
        ),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = (text: string) =>
      new Promise<grpc.ServiceError>((resolve, reject) =>
        client.makeUnaryRequest('/test.v1.Fail/Fail', identity, identity, Buffer.from(text), { deadline: Date.now() + 5_000 }, (error) =>
          error ? resolve(error) : reject(new Error('the call did not fail')),
        ),
      );
    try {
      const invalid = await call('invalid');
      expect([invalid.code, invalid.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'page_size: must be at most 100']);
      expect(statusAsJson(invalid.metadata.get(STATUS_DETAILS_TRAILER)[0] as Buffer)).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: 'page_size', description: 'must be at most 100' }] }],
      });
      const unavailable = await call('unavailable');
      expect(unavailable.code).toBe(grpc.status.UNAVAILABLE);
      const status = statusOfTrailers(unavailable.metadata);
      expect(status && detailsOfStatus(status)).toEqual({ retryDelayMs: 1_000 });
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
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
