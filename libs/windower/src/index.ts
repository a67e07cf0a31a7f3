export { CheckpointStore, CHECKPOINT_BUCKET, CHECKPOINT_FRAME_KINDS } from './checkpoint-store';
export {
  PartitionProcessor,
  type AggregateWindowing,
  type OutgoingMessage,
  type PartitionProcessorOptions,
  type ProcessedInput,
} from './partition-processor';
export { assignPartitions, LEASE_BUCKET, LEASE_KEY_PREFIX, MEMBER_BUCKET } from './partition-leases';
export type { WindowerObserver } from './partition-runner';
export { Windower, WindowConfigurationChangedError, type WindowerEvents, type WindowerOptions } from './windower';
export { alignedIn, stationTimeZonesSchema, windowSpecSchema } from './window-config';
export { isValidTimeZone } from '@tollstream/windowing';
