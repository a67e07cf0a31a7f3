export { connectToBroker, type BrokerConnectionOptions } from './connect';
export { brokerConfigShape, connectServiceToBroker, type BrokerConfig, type ServiceBroker } from './service-broker';
export { DeadLetterPublisher, originalMsgIdOf, type DeadLetterInput } from './dead-letters';
export { mixedHashOfAccount, pageOfAccount, partitionForStation, shardForAccount } from './partitioning';
export {
  declareTopology,
  defaultTopologyOptions,
  provisionTopology,
  type Topology,
  type TopologyOptions,
} from './topology';
export {
  PoisonMessageError,
  startTypedConsumer,
  type MessageCodec,
  type RunningConsumer,
  type TypedConsumerOptions,
} from './typed-consumer';
export { inspectStreams, type StreamStatus } from './inspect';
export { assignPartitions, PartitionLeases, type PartitionLeaseOptions, type PartitionOwner } from './partition-leases';
export { SnapshotStore, type SnapshotFrame, type SnapshotStoreOptions } from './snapshot-store';
export { BackgroundSnapshots, observed, Slicer, type BackgroundSnapshotsOptions } from './background-snapshots';
