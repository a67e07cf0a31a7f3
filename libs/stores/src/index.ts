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
export type { AppendResult, InboxPage, InboxStore, ListInboxOptions, NewNotification, StoredNotification } from './inbox-store';
export { KvInboxStore, type KvInboxStoreOptions } from './kv-inbox-store';
export { MongoInboxStore, type MongoInboxStoreOptions } from './mongo-inbox-store';
export {
  TrafficStateConflictError,
  type StationReferenceRecord,
  type StoredPartitionState,
  type TrafficBandRecord,
  type TrafficDetectionStore,
  type TrafficPartitionState,
  type TrafficReferenceStore,
  type TrafficReferenceVersionRecord,
  type TrafficSlotRecord,
} from './traffic-store';
export { KvTrafficDetectionStore, KvTrafficReferenceStore, type KvTrafficStoreOptions } from './kv-traffic-store';
export { MongoTrafficStores, type MongoTrafficStoreOptions } from './mongo-traffic-store';
export {
  MAX_RECORDS_PER_WRITE,
  type AccountStateChanges,
  type AccountStateRecord,
  type AccountStateSource,
  type AccountStateStore,
  type MonthTotalRecord,
} from './account-state-store';
export { KvAccountStateStore, type KvAccountStateStoreOptions } from './kv-account-state-store';
export { MongoAccountStateStore, type MongoAccountStateStoreOptions } from './mongo-account-state-store';
