import * as grpc from '@grpc/grpc-js';
import type {
  IngestServiceServer,
  StreamTransactionsRequest,
  StreamTransactionsResponse,
  SubmitTransactionsRequest,
  SubmitTransactionsResponse,
  TollTransaction,
} from '@tollstream/contracts';
import { bearerTokenFrom, grpcStatusError, type Logger } from '@tollstream/service-kit';
import type { StationCredentials, StationPrincipal } from './station-credentials';
import type { TransactionIngest } from './transaction-ingest';

export interface IngestApiLimits {
  /** Records per request (SubmitTransactions) or per stream message (StreamTransactions). */
  maxRecordsPerBatch: number;
  /** Stream messages a station may have unacknowledged on one StreamTransactions call. */
  maxBatchesInFlightPerStream: number;
}

/** gRPC adapter of TransactionIngest: authentication, request bounds, error mapping. */
export function createIngestService(
  ingest: TransactionIngest,
  credentials: StationCredentials,
  limits: IngestApiLimits,
  logger: Logger,
): IngestServiceServer {
  const authenticate = (metadata: grpc.Metadata): StationPrincipal | grpc.ServiceError => {
    const principal = credentials.authenticate(bearerTokenFrom(metadata));
    return (
      principal ??
      grpcStatusError(grpc.status.UNAUTHENTICATED, 'a valid station credential is required: metadata "authorization: Bearer <token>"')
    );
  };
  const checkBatch = (transactions: TollTransaction[]): grpc.ServiceError | undefined => {
    if (transactions.length === 0) {
      return grpcStatusError(grpc.status.INVALID_ARGUMENT, 'transactions: at least one record is required');
    }
    if (transactions.length > limits.maxRecordsPerBatch) {
      return grpcStatusError(
        grpc.status.INVALID_ARGUMENT,
        `transactions: at most ${limits.maxRecordsPerBatch} records per batch, got ${transactions.length}`,
      );
    }
    return undefined;
  };

  return {
    submitTransactions(
      call: grpc.ServerUnaryCall<SubmitTransactionsRequest, SubmitTransactionsResponse>,
      callback: grpc.sendUnaryData<SubmitTransactionsResponse>,
    ): void {
      const principal = authenticate(call.metadata);
      if (principal instanceof Error) return callback(principal);
      const invalid = checkBatch(call.request.transactions);
      if (invalid) return callback(invalid);
      ingest.submit(principal, call.request.transactions).then(
        (results) => callback(null, { results }),
        (error: unknown) => {
          logger.error({ err: error, credential: principal.name }, 'submit failed');
          callback(grpcStatusError(grpc.status.UNAVAILABLE, 'ingest failed; retry the batch (retries are deduplicated)'));
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
      call.on('data', (request: StreamTransactionsRequest) => {
        const invalid = checkBatch(request.transactions);
        if (invalid) {
          call.emit('error', grpcStatusError(invalid.code, `batch ${request.batchRef.slice(0, 64)}: ${invalid.details}`));
          return;
        }
        inFlight++;
        // Backpressure: stop reading from the station while too many batches await storage.
        if (inFlight >= limits.maxBatchesInFlightPerStream) call.pause();
        ingest.submit(principal, request.transactions).then(
          (results) => {
            call.write({ batchRef: request.batchRef, results });
            inFlight--;
            call.resume();
            finishIfDone();
          },
          (error: unknown) => {
            logger.error({ err: error, credential: principal.name }, 'stream batch failed');
            call.emit('error', grpcStatusError(grpc.status.UNAVAILABLE, 'ingest failed; resend unacknowledged batches'));
          },
        );
      });
      call.on('end', () => {
        ended = true;
        finishIfDone();
      });
    },
  };
}
