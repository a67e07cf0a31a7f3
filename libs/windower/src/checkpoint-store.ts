import type { JetStreamClient } from '@nats-io/jetstream';
import { SnapshotStore } from '@tollstream/messaging';
import type { SnapshotFrameKind } from './partition-processor';

export const CHECKPOINT_BUCKET = 'windower-checkpoints';

/**
 * Frame kinds of a partition snapshot. A frame stores its kind's index in this list, so existing
 * checkpoints load only while the order stays (append new kinds at the end).
 */
export const CHECKPOINT_FRAME_KINDS: readonly SnapshotFrameKind[] = ['header', 'customer-spend', 'station-traffic'];

/**
 * The windower's per-partition state in the shared snapshot store (chunked, atomically replaced).
 *
 * Object names carry a fingerprint of the window configuration: after a configuration change no
 * old state is restored into windows of another shape; the partition is recomputed from the
 * stream instead (Kappa: results are a function of the log).
 */
export type CheckpointStore = SnapshotStore<SnapshotFrameKind>;

// Same name as the type so that `CheckpointStore.open(...)` keeps working for existing callers.
export const CheckpointStore = {
  open(js: JetStreamClient, options: { replicas: number }): Promise<CheckpointStore> {
    return SnapshotStore.open(js, {
      bucket: CHECKPOINT_BUCKET,
      description: 'windower partition state (window snapshots and input position)',
      replicas: options.replicas,
      kinds: CHECKPOINT_FRAME_KINDS,
    });
  },
};
