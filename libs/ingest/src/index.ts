export { DuplicateIndex } from './duplicate-index';
export { StationCredentials, type StationPrincipal } from './station-credentials';
export {
  TransactionIngest,
  type IngestObserver,
  type RejectedRecordSink,
  type TransactionAppender,
  type TransactionIngestOptions,
} from './transaction-ingest';
export {
  TransactionLog,
  type AppendOutcome,
  type TransactionLogObserver,
  type TransactionLogOptions,
} from './transaction-log';
export { fieldLimits, isoCurrencies, validateTransaction, type Rejection, type ValidationPolicy } from './validation';
export {
  batchViolation,
  createIngestService,
  MAX_BATCH_REF_LENGTH,
  streamBatchViolation,
  type IngestApiLimits,
  type IngestApiObserver,
} from './ingest-grpc';
