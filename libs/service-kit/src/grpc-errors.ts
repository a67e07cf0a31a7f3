import * as grpc from '@grpc/grpc-js';
import { bearerTokenFrom, constantTimeEquals } from './grpc-auth';

/** A gRPC error with a status code and details, as handlers pass to callbacks or emit on streams. */
export function grpcStatusError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/** Bad input in a request: answered INVALID_ARGUMENT with "<field>: <problem>". */
export class InvalidArgumentError extends Error {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

/** Whether the call carries `authorization: Bearer <token>` with the service credential (compared in constant time). */
export function hasServiceCredential(metadata: grpc.Metadata, expectedToken: string): boolean {
  const token = bearerTokenFrom(metadata);
  return token !== undefined && constantTimeEquals(token, expectedToken);
}
