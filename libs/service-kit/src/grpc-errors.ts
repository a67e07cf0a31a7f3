import * as grpc from '@grpc/grpc-js';
import { Any, BadRequest, RetryInfo, Status } from '@tollstream/contracts';
import { bearerTokenFrom, constantTimeEquals } from './grpc-auth';

/**
 * The trailer gRPC defines for the rich error model: a serialized google.rpc.Status whose details are
 * google.protobuf.Any messages (here google.rpc.BadRequest and google.rpc.RetryInfo).
 */
export const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';

/** Type URLs of the details we send, as clients match them in google.protobuf.Any. */
export const detailTypeUrls = {
  badRequest: 'type.googleapis.com/google.rpc.BadRequest',
  retryInfo: 'type.googleapis.com/google.rpc.RetryInfo',
} as const;

/** What a client waits before retrying a call refused as UNAVAILABLE when the cause gives no better figure. */
export const DEFAULT_RETRY_DELAY_MS = 1_000;

/** One bad field of a request: its proto path (e.g. `threshold.currency`, `transactions[3].lane_id`) and why. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** Machine-readable details of a status: field violations (INVALID_ARGUMENT) or a retry delay. */
export interface StatusDetails {
  fieldViolations?: ReadonlyArray<FieldViolation>;
  retryDelayMs?: number;
}

/** A google.rpc.Status with its details packed in Any, for the trailer or for a message field. */
export function richStatus(code: grpc.status, message: string, details: StatusDetails = {}): Status {
  const packed: Any[] = [];
  if (details.fieldViolations && details.fieldViolations.length > 0) {
    const badRequest: BadRequest = {
      fieldViolations: details.fieldViolations.map(({ field, description }) => ({ field, description, reason: '', localizedMessage: undefined })),
    };
    packed.push({ typeUrl: detailTypeUrls.badRequest, value: Buffer.from(BadRequest.encode(badRequest).finish()) });
  }
  if (details.retryDelayMs !== undefined) {
    const delayMs = Math.max(0, Math.round(details.retryDelayMs));
    const retryInfo: RetryInfo = { retryDelay: { seconds: Math.floor(delayMs / 1000), nanos: (delayMs % 1000) * 1_000_000 } };
    packed.push({ typeUrl: detailTypeUrls.retryInfo, value: Buffer.from(RetryInfo.encode(retryInfo).finish()) });
  }
  return { code, message, details: packed };
}

/**
 * A gRPC error with a status code and message, as handlers pass to callbacks or emit on streams. With
 * details, they travel as a google.rpc.Status in the `grpc-status-details-bin` trailer.
 */
export function grpcStatusError(code: grpc.status, message: string, details?: StatusDetails): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (details) metadata.set(STATUS_DETAILS_TRAILER, Buffer.from(Status.encode(richStatus(code, message, details)).finish()));
  return Object.assign(new Error(message), { code, details: message, metadata });
}

/**
 * INVALID_ARGUMENT naming each bad field: the message reads "<field>: <problem>; ..." and the trailer
 * carries a google.rpc.BadRequest with one field violation each. Every service answers bad input with this.
 */
export function invalidArgumentError(violations: FieldViolation | ReadonlyArray<FieldViolation>): grpc.ServiceError {
  const list = isViolationList(violations) ? violations : [violations];
  const message = list.map(({ field, description }) => `${field}: ${description}`).join('; ');
  return grpcStatusError(grpc.status.INVALID_ARGUMENT, message, { fieldViolations: list });
}

/** A refusal that the same call may overcome later (UNAVAILABLE, RESOURCE_EXHAUSTED), with google.rpc.RetryInfo. */
export function retryLaterError(
  code: grpc.status.UNAVAILABLE | grpc.status.RESOURCE_EXHAUSTED,
  message: string,
  retryDelayMs: number = DEFAULT_RETRY_DELAY_MS,
): grpc.ServiceError {
  return grpcStatusError(code, message, { retryDelayMs });
}

/** What a google.rpc.Status says in the details we know (client side: the trailer, or a stream's batch_error). */
export function detailsOfStatus(status: Status): StatusDetails {
  const details: StatusDetails = {};
  for (const any of status.details) {
    // Match by the type name after the last '/', as the Any specification asks (the prefix is arbitrary).
    const typeName = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
    if (typeName === 'google.rpc.BadRequest') {
      details.fieldViolations = BadRequest.decode(any.value).fieldViolations.map(({ field, description }) => ({ field, description }));
    } else if (typeName === 'google.rpc.RetryInfo') {
      const delay = RetryInfo.decode(any.value).retryDelay;
      if (delay) details.retryDelayMs = delay.seconds * 1000 + Math.round(delay.nanos / 1_000_000);
    }
  }
  return details;
}

/** The google.rpc.Status of a failed call's trailers, when the server sent one. */
export function statusOfTrailers(metadata: grpc.Metadata | undefined): Status | undefined {
  const [value] = metadata?.get(STATUS_DETAILS_TRAILER) ?? [];
  return value instanceof Buffer ? Status.decode(value) : undefined;
}

function isViolationList(value: FieldViolation | ReadonlyArray<FieldViolation>): value is ReadonlyArray<FieldViolation> {
  return Array.isArray(value);
}

/** Bad input in a request: answered INVALID_ARGUMENT with "<field>: <problem>" and a BadRequest field violation. */
export class InvalidArgumentError extends Error implements FieldViolation {
  readonly description: string;

  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
    this.description = problem;
  }
}

/** Whether the call carries `authorization: Bearer <token>` with the service credential (compared in constant time). */
export function hasServiceCredential(metadata: grpc.Metadata, expectedToken: string): boolean {
  const token = bearerTokenFrom(metadata);
  return token !== undefined && constantTimeEquals(token, expectedToken);
}
