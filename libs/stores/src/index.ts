export {
  backoff,
  MAX_UPDATE_ATTEMPTS,
  StoreContentionError,
  type AccountRecord,
  type AccountSpendDocument,
  type AccountSpendStore,
  type AccountUpdate,
  type LedgerEntry,
  type ListMonthsOptions,
  type MonthKey,
  type MonthRecord,
  type OutboxEntry,
  type SpendingAlertRecord,
  type ThresholdChangeRecord,
  type ThresholdRecord,
} from './account-spend-store';
export { KvAccountSpendStore, kvKeyOfAccount, type KvAccountSpendStoreOptions } from './kv-account-spend-store';
export { MongoAccountSpendStore, type MongoAccountSpendStoreOptions } from './mongo-account-spend-store';
