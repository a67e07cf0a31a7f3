import * as grpc from '@grpc/grpc-js';
import { IngestServiceClient, type SubmitTransactionsRequest, type SubmitTransactionsResponse } from '@tollstream/contracts';
import { detailsOfStatus, grpcClientCredentials, statusOfTrailers, type ClientTlsOptions } from '@tollstream/service-kit';

/** The one call the sender needs; the gRPC client in production, a fake in unit tests. */
export interface IngestTransport {
  /** Rejects with an error carrying a numeric gRPC `code` when the call fails. */
  submitTransactions(request: SubmitTransactionsRequest, deadline: Date): Promise<SubmitTransactionsResponse>;
  close(): void;
}

export interface GrpcTransportOptions {
  /** host:port of the ingestor. */
  address: string;
  /** The station's bearer token. Sent as `authorization: Bearer <token>`, never logged. */
  token: string;
  /** Ready channel credentials; they win over `tls`. */
  credentials?: grpc.ChannelCredentials;
  /** TLS to the ingestor (CA, client certificate for mutual TLS); unset: plaintext (ADR 0017). */
  tls?: ClientTlsOptions;
  channelOptions?: grpc.ChannelOptions;
}

/** Checks a bearer token's shape without ever putting the token in a message. */
export function checkToken(token: string): string | undefined {
  if (token.length === 0) return 'the station token is empty';
  if (!/^[\x21-\x7e]+$/.test(token)) return 'the station token contains spaces or non-printable characters';
  return undefined;
}

export function createGrpcIngestTransport(options: GrpcTransportOptions): IngestTransport {
  const problem = checkToken(options.token);
  if (problem) throw new Error(problem);
  const secured = options.credentials ? { credentials: options.credentials, channelOptions: {} } : grpcClientCredentials(options.tls ?? {});
  const client = new IngestServiceClient(options.address, secured.credentials, { ...secured.channelOptions, ...options.channelOptions });
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${options.token}`);
  return {
    submitTransactions: (request, deadline) =>
      new Promise((resolvePromise, reject) => {
        client.submitTransactions(request, metadata, { deadline }, (error, response) => {
          if (error) reject(error);
          else resolvePromise(response);
        });
      }),
    close: () => client.close(),
  };
}

/** The gRPC status code of a failed call, or undefined for errors that are not gRPC statuses. */
export function grpcCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const code = (error as { code: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/** The status details of a failed gRPC call, or the error message. */
export function grpcDetailsOf(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'details' in error) {
    const details = (error as { details: unknown }).details;
    // grpc-js appends an empty "Resolution note:" to connection errors.
    if (typeof details === 'string' && details.length > 0) return details.replace(/\.?\s*Resolution note:\s*$/, '');
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * The delay the ingestor asked for before the same call is tried again: the google.rpc.RetryInfo in
 * the status details (`grpc-status-details-bin` trailer, ADR 0016) of a failed call. Undefined when
 * there is none, or when the trailer cannot be decoded (the caller falls back to its backoff).
 */
export function retryDelayAskedBy(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('metadata' in error)) return undefined;
  const metadata = (error as { metadata: unknown }).metadata;
  if (!(metadata instanceof grpc.Metadata)) return undefined;
  try {
    const status = statusOfTrailers(metadata);
    return status && detailsOfStatus(status).retryDelayMs;
  } catch {
    return undefined; // a malformed trailer is the server's problem; the backoff still bounds the retries
  }
}
