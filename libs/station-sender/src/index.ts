export { sendFile } from './send-file';
export type {
  LineProblem,
  RejectedRecord,
  RetryNotice,
  SendCounts,
  SendOptions,
  SendProgress,
  SendSummary,
} from './send-file';
export { CheckpointError, InputFileError, SendError } from './errors';
export { inputFormats, readTransactionFile, resolveInputFormat } from './transaction-file';
export type { InputFormat, InputLine, ReadTransactionsOptions } from './transaction-file';
export { parseInstant, parseTransactionRecord, transactionFieldNames, vehicleClassShortNames } from './transaction-record';
export type { RecordParseResult, TransactionFieldName } from './transaction-record';
export { defaultCheckpointPath, loadCheckpoint } from './checkpoint';
export type { Checkpoint, InputIdentity } from './checkpoint';
export { backoffDelayMs, defaultRetryPolicy, isRetryableStatus, retryDelayMs } from './retry-policy';
export type { RetryPolicy } from './retry-policy';
export { checkToken, createGrpcIngestTransport, grpcCodeOf, grpcDetailsOf, retryDelayAskedBy } from './ingest-transport';
export type { GrpcTransportOptions, IngestTransport } from './ingest-transport';
export { addClientTlsOptions, clientTlsFromOptions } from './client-tls-options';
