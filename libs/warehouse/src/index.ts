export {
  assertDatabaseName,
  assertMigrationsOrdered,
  DEDUPLICATION_WINDOW,
  migrations,
  statementsFor,
  type Migration,
} from './lib/schema';
export { applyMigrations, type MergePolicyChoice, type MigrationReport } from './lib/migrate';
export { openWarehouse, redactUrl, type OpenWarehouseOptions, type WarehouseConnection, type WarehouseKind } from './lib/connection';
export {
  insertBody,
  insertLines,
  joinBodies,
  WarehouseInsertError,
  type InsertFormat,
  type InsertSettings,
  type RawBodyInserter,
} from './lib/insert';
export { TsvBuffer } from './lib/protobuf-wire';
export { transactionTsv, type TransactionTsv } from './lib/transaction-tsv';
export { spendWindowTsv, type SpendWindowTsv } from './lib/spend-window-tsv';
export {
  alertColumns,
  alertRow,
  spendWindowColumns,
  spendWindowRows,
  timestampText,
  trafficConditionName,
  trafficWindowColumns,
  trafficWindowRows,
  transactionColumns,
  transactionRows,
  tsvFields,
  tsvText,
  vehicleClassName,
  type InvalidRecord,
  type TransactionRows,
} from './lib/rows';
export { readOnlyStatement, StatementNotAllowedError } from './lib/sql-guard';
export {
  createQueryHandler,
  DEFAULT_MAX_RESULT_ROWS,
  newQueryToken,
  openReadOnlyEmbeddedClient,
  queryThroughEndpoint,
  readQueryEndpointFile,
  removeQueryEndpointFile,
  runReadOnlyQuery,
  writeQueryEndpointFile,
  type QueryColumn,
  type QueryEndpointInfo,
  type QueryResultTable,
} from './lib/query';
export { formatResult, resultFormats, type ResultFormat } from './lib/result-format';
export {
  WarehouseLoader,
  type LoaderObserver,
  type LoaderStreamName,
  type WarehouseLoaderOptions,
  type WarehouseTable,
} from './lib/loader';
