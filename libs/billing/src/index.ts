export {
  alertIdOf,
  applySpend,
  clearThreshold,
  currentMonthOf,
  markPublished,
  monthlySpendView,
  newAccountDocument,
  readOutbox,
  setThreshold,
  thresholdEventIdOf,
  type ApplySpendResult,
  type BillingPolicy,
  type ClearThresholdResult,
  type EntryOutcome,
  type MonthlySpendView,
  type SetThresholdResult,
  type ThresholdInput,
} from './account-spend';
export {
  ACCOUNT_ID_PATTERN,
  AccountBackendUnavailableError,
  createAccountService,
  storeAccountBackend,
  type AccountApiLimits,
  type AccountBackend,
  type AccountView,
  type MonthView,
  type SetThresholdOutcome,
} from './account-service';
export { isValidTimeZone, monthOf, MONTH_PATTERN } from './months';
export { outboxMessage, SpendApplier, type ApplyBatchResult, type SpendApplierObserver, type SpendApplierOptions } from './spend-applier';
export { SpendConsumer, type SpendConsumerOptions } from './spend-consumer';
export {
  entriesOfLateBatch,
  entriesOfSpendBatch,
  escapeKeyPart,
  MAX_ENTRY_AMOUNT_MINOR,
  type InvalidSpendInput,
  type ParsedSpend,
  type SpendEntry,
} from './spend-entries';
export {
  BillingShard,
  type AccountState,
  type BillingShardOptions,
  type MonthState,
  type ShardDeadLetter,
  type ShardOutcome,
  type ShardOutput,
  type ThresholdCommandOutcome,
} from './billing-shard';
export { BILLING_LEASE_BUCKET, BILLING_MEMBER_BUCKET, BILLING_SNAPSHOT_BUCKET, BillingShards, type BillingShardsOptions } from './billing-shards';
export { shardAccountBackend, type ShardAccountBackendOptions } from './shard-account-backend';
export { ShardRunner, snapshotNameOfShard, type BillingShardObserver, type ShardQuery, type ShardQueryAnswer, type ShardRunnerSettings } from './shard-runner';
