// The lease machinery is shared with billing (libs/messaging, ADR 0013); the windower's names stay
// those of existing deployments (ADR 0006): buckets below, lease keys `partition-<p>`.
export { assignPartitions } from '@tollstream/messaging';

export const LEASE_BUCKET = 'windower-leases';
export const MEMBER_BUCKET = 'windower-members';
export const LEASE_KEY_PREFIX = 'partition-';
