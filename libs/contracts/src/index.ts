export { Timestamp } from './generated/google/protobuf/timestamp';
export { Any } from './generated/google/protobuf/any';
export { Duration } from './generated/google/protobuf/duration';
export { Status } from './generated/google/rpc/status';
export { BadRequest, BadRequest_FieldViolation, RetryInfo } from './generated/google/rpc/error_details';
export {
  TollTransaction,
  VehicleClass,
  vehicleClassFromJSON,
  vehicleClassToJSON,
} from './generated/tolls/ingest/v1/transaction';
export {
  IngestServiceClient,
  IngestServiceService,
  RejectionCode,
  rejectionCodeToJSON,
  StreamTransactionsRequest,
  StreamTransactionsResponse,
  SubmitTransactionsRequest,
  SubmitTransactionsResponse,
  TransactionResult,
  TransactionStatus,
  transactionStatusToJSON,
} from './generated/tolls/ingest/v1/ingest_service';
export type { IngestServiceServer } from './generated/tolls/ingest/v1/ingest_service';
export { DeadLetter, IngestedTransaction, TransactionBatch } from './generated/tolls/stream/v1/envelope';
export { rejectionCodeName } from './rejection';
export {
  partitionOfSubject,
  RECORD_KIND_HEADER,
  SpendShardRecordKinds,
  Streams,
  Subjects,
  trailingNumberOfSubject,
  type AlertKind,
  type WindowedAggregate,
} from './subjects';
export {
  CustomerSpendBatch,
  CustomerSpendWindow,
  StationTrafficBatch,
  StationTrafficWindow,
  VehicleClassCount,
} from './generated/tolls/stream/v1/aggregates';
export {
  Alert,
  SpendingThresholdBreached,
  StationTrafficAlert,
  TrafficCondition,
  trafficConditionFromJSON,
  trafficConditionToJSON,
} from './generated/tolls/alerts/v1/alert';
export {
  AccountServiceClient,
  AccountServiceService,
  ClearSpendingThresholdRequest,
  ClearSpendingThresholdResponse,
  GetMonthlySpendRequest,
  GetMonthlySpendResponse,
  GetSpendingThresholdRequest,
  GetSpendingThresholdResponse,
  ListMonthlySpendRequest,
  ListMonthlySpendResponse,
  Money,
  MonthlySpend,
  SetSpendingThresholdRequest,
  SetSpendingThresholdResponse,
  SpendingThreshold,
} from './generated/tolls/accounts/v1/account_service';
export type { AccountServiceServer } from './generated/tolls/accounts/v1/account_service';
export { SpendingThresholdChanged, SpendingThresholdCommand, SpendingThresholdCommandOutcome } from './generated/tolls/accounts/v1/events';
export { fileDescriptorSetBase64 } from './generated/descriptor_set';
export {
  ListNotificationsRequest,
  ListNotificationsResponse,
  MarkReadRequest,
  MarkReadResponse,
  Notification,
  NotificationServiceClient,
  NotificationServiceService,
  SubscribeNotificationsRequest,
  SubscribeNotificationsResponse,
} from './generated/tolls/notifications/v1/notification_service';
export type { NotificationServiceServer } from './generated/tolls/notifications/v1/notification_service';
export {
  GetStationReferenceRequest,
  GetStationReferenceResponse,
  ListStationReferencesRequest,
  ListStationReferencesResponse,
  PutStationReferenceRequest,
  PutStationReferenceResponse,
  ReferenceChange,
  SlotBand,
  StationReference,
  StationReferenceVersion,
  TrafficReferenceServiceClient,
  TrafficReferenceServiceService,
  Weekday,
} from './generated/tolls/traffic/v1/traffic_reference_service';
export type { TrafficReferenceServiceServer } from './generated/tolls/traffic/v1/traffic_reference_service';
