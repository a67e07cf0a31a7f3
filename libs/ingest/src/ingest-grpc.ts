import * as grpc from '@grpc/grpc-js';
import type {
  IngestServiceServer,
  StreamTransactionsRequest,
  StreamTransactionsResponse,
  SubmitTransactionsRequest,
  SubmitTransactionsResponse,
  TollTransaction,
} from '@tollstream/contracts';
import {
  bearerTokenFrom,
  DEFAULT_RETRY_DELAY_MS,
  grpcStatusError,
  invalidArgumentError,
  retryLaterError,
  richStatus,
  type FieldViolation,
  type Logger,
} from '@tollstream/service-kit';
import type { StationCredentials, StationPrincipal } from './station-credentials';
import type { TransactionIngest } from './transaction-ingest';

export interface IngestApiLimits {
  /** Records per request (SubmitTransactions) or per stream message (StreamTransactions). */
  maxRecordsPerBatch: number;
  /** Stream messages a station may have unacknowledged on one StreamTransactions call. */
  maxBatchesInFlightPerStream: number;
}

/** Counts what the API refused as a whole, for operators (records are counted by TransactionIngest). */
export interface IngestApiObserver {
  /** A batch not taken: `reason` is 'invalid_batch' (fix it) or 'unavailable' (resend it). */
  batchRefused?(call: 'submit' | 'stream', reason: 'invalid_batch' | 'unavailable'): void;
}

/** A station's batch reference is echoed back; longer ones are refused so an echo stays small. */
export const MAX_BATCH_REF_LENGTH = 128;

const STORAGE_UNAVAILABLE = 'ingest failed; send the same batch again (records already stored are answered DUPLICATE)';

/** What is wrong with a batch as a whole, before any record is looked at; undefined when nothing is. */
export function batchViolation(transactions: ReadonlyArray<TollTransaction>, limits: Pick<IngestApiLimits, 'maxRecordsPerBatch'>): FieldViolation | undefined {
  if (transactions.length === 0) return { field: 'transactions', description: 'at least one record is required' };
  if (transactions.length > limits.maxRecordsPerBatch) {
    return { field: 'transactions', description: `at most ${limits.maxRecordsPerBatch} records per batch, got ${transactions.length}` };
  }
  return undefined;
}

/** batchViolation, plus the stream's own bound on the echoed batch reference. */
export function streamBatchViolation(request: StreamTransactionsRequest, limits: Pick<IngestApiLimits, 'maxRecordsPerBatch'>): FieldViolation | undefined {
  if (request.batchRef.length > MAX_BATCH_REF_LENGTH) {
    return { field: 'batch_ref', description: `at most ${MAX_BATCH_REF_LENGTH} characters, got ${request.batchRef.length}` };
  }
  return batchViolation(request.transactions, limits);
}

/**
 * gRPC adapter of TransactionIngest: authentication, request bounds, error mapping (ADR 0016).
 * On the stream, a batch that cannot be taken is answered on its own (batch_error) and the stream
 * goes on; only a missing credential or a broken stream ends it.
 */
export function createIngestService(
  ingest: TransactionIngest,
  credentials: StationCredentials,
  limits: IngestApiLimits,
  logger: Logger,
  observer: IngestApiObserver = {},
): IngestServiceServer {
  const authenticate = (metadata: grpc.Metadata): StationPrincipal | grpc.ServiceError => {
    const principal = credentials.authenticate(bearerTokenFrom(metadata));
    return (
      principal ??
      grpcStatusError(grpc.status.UNAUTHENTICATED, 'a valid station credential is required: metadata "authorization: Bearer <token>"')
    );
  };

  return {
    submitTransactions(
      call: grpc.ServerUnaryCall<SubmitTransactionsRequest, SubmitTransactionsResponse>,
      callback: grpc.sendUnaryData<SubmitTransactionsResponse>,
    ): void {
      const principal = authenticate(call.metadata);
      if (principal instanceof Error) return callback(principal);
      const violation = batchViolation(call.request.transactions, limits);
      if (violation) {
        observer.batchRefused?.('submit', 'invalid_batch');
        return callback(invalidArgumentError(violation));
      }
      ingest.submit(principal, call.request.transactions).then(
        (results) => callback(null, { results }),
        (error: unknown) => {
          logger.error({ err: error, credential: principal.name }, 'submit failed');
          observer.batchRefused?.('submit', 'unavailable');
          callback(retryLaterError(grpc.status.UNAVAILABLE, STORAGE_UNAVAILABLE, DEFAULT_RETRY_DELAY_MS));
        },
      );
    },

    streamTransactions(call: grpc.ServerDuplexStream<StreamTransactionsRequest, StreamTransactionsResponse>): void {
      const principal = authenticate(call.metadata);
      if (principal instanceof Error) {
        call.emit('error', principal);
        return;
      }
      let inFlight = 0;
      let ended = false;
      const finishIfDone = () => {
        if (ended && inFlight === 0) call.end();
      };
      // A station that went away gets no answers; what it sent is stored or not, and its resend is deduplicated.
      const acknowledge = (response: StreamTransactionsResponse) => {
        if (!call.cancelled) call.write(response);
      };
      call.on('data', (request: StreamTransactionsRequest) => {
        const batchRef = request.batchRef.slice(0, MAX_BATCH_REF_LENGTH);
        const violation = streamBatchViolation(request, limits);
        if (violation) {
          // The batch is answered and the stream goes on: one bad batch must not cost the station the others in flight.
          observer.batchRefused?.('stream', 'invalid_batch');
          const message = `${violation.field}: ${violation.description}`;
          acknowledge({ batchRef, results: [], batchError: richStatus(grpc.status.INVALID_ARGUMENT, message, { fieldViolations: [violation] }) });
          return;
        }
        inFlight++;
        // Backpressure: stop reading from the station while too many batches await storage.
        if (inFlight >= limits.maxBatchesInFlightPerStream) call.pause();
        ingest
          .submit(principal, request.transactions)
          .then(
            (results) => acknowledge({ batchRef, results, batchError: undefined }),
            (error: unknown) => {
              logger.error({ err: error, credential: principal.name, batchRef }, 'stream batch failed');
              observer.batchRefused?.('stream', 'unavailable');
              acknowledge({
                batchRef,
                results: [],
                batchError: richStatus(grpc.status.UNAVAILABLE, STORAGE_UNAVAILABLE, { retryDelayMs: DEFAULT_RETRY_DELAY_MS }),
              });
            },
          )
          .finally(() => {
            inFlight--;
            call.resume();
            finishIfDone();
          });
      });
      call.on('end', () => {
        ended = true;
        finishIfDone();
      });
    },
  };
}
