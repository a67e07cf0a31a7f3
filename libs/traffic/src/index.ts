// Traffic anomaly detection (ADR 0009): reference thresholds per station and slot, detection of
// stations below / above their band (silent stations included), service wiring.
export { isValidTimeZone } from '@tollstream/windowing';
export {
  bandOf,
  formatReferenceError,
  localWeekdayMinute,
  mergeReferenceVersion,
  parseReferenceFile,
  planReferenceChanges,
  referenceCsvColumns,
  ReferenceFileInvalid,
  versionAt,
  versionIdOf,
  type ParsedReferenceVersion,
  type ReferenceChange,
  type ReferenceFileError,
} from './reference';
export {
  applyTrafficBatch,
  newPartitionState,
  slotKey,
  type AlertCondition,
  type DetectorOptions,
  type DetectorOutcome,
  type DetectorWindow,
  type ReferenceView,
  type TrafficAlertOut,
} from './detector';
export { alertMessage, ReferenceCache, TrafficConsumer, type TrafficConsumerOptions } from './traffic-consumer';
export { formatReferenceChanges, loadReferenceFile, openKvReferenceStore, type LoadReferencesResult } from './reference-loader';
export { createTrafficReferenceService } from './reference-service';
export { proposeReferences, type ProposeOptions, type SlotCountRow } from './propose';
