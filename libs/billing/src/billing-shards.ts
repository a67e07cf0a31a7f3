import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { PartitionLeases, SnapshotStore, type DeadLetterPublisher } from '@tollstream/messaging';
import type { AccountStateStore } from '@tollstream/stores';
import type { BillingShardOptions } from './billing-shard';
import { ShardRunner, snapshotNameOfShard, type BillingShardObserver, type ShardRunnerSettings } from './shard-runner';

export const BILLING_LEASE_BUCKET = 'billing-leases';
export const BILLING_MEMBER_BUCKET = 'billing-members';
export const BILLING_SNAPSHOT_BUCKET = 'billing-snapshots';

export interface BillingShardsOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  store: AccountStateStore;
  deadLetters: DeadLetterPublisher;
  /** Unique per running process. */
  instanceId: string;
  spendShards: number;
  replicas: number;
  leaseTtlMs: number;
  renewIntervalMs: number;
  shard: Omit<BillingShardOptions, 'shard'>;
  runner: Omit<ShardRunnerSettings, 'maxUnflushedAccounts'>;
  /**
   * Changed accounts the instance holds unwritten at most, shared by the shards it owns (each its
   * share, see ShardRunnerSettings.maxUnflushedAccounts): a budget of the instance's memory. Default 160,000.
   */
  maxUnflushedAccounts?: number;
  observer: BillingShardObserver;
  onLeaseError: (error: unknown) => void;
}

/**
 * The spend shards this billing instance owns (ADR 0013): leases and membership in KV shared with
 * the windower's machinery (rendezvous assignment, renewals by compare-and-set, hand-over on a
 * graceful stop), one ShardRunner per owned shard, snapshots in an object store.
 */
export class BillingShards {
  private readonly runners = new Map<number, ShardRunner>();
  private leases?: PartitionLeases;

  private constructor(
    private readonly options: BillingShardsOptions,
    private readonly snapshots: SnapshotStore,
  ) {}

  static async open(options: BillingShardsOptions): Promise<BillingShards> {
    const snapshots = await SnapshotStore.open(options.js, {
      bucket: BILLING_SNAPSHOT_BUCKET,
      description: 'billing-threshold spend shard state (accounts, partition chains, input position)',
      replicas: options.replicas,
      kinds: ['header', 'accounts', 'partitions'],
    });
    return new BillingShards(options, snapshots);
  }

  /** Whether any shard has a snapshot: the shard engine has state, whatever its read model holds. */
  async hasAnySnapshot(): Promise<boolean> {
    for (let shard = 0; shard < this.options.spendShards; shard++) if (await this.snapshots.exists(snapshotNameOfShard(shard))) return true;
    return false;
  }

  /** Per owned shard, the records not yet applied (consumer lag), where known. */
  pendingRecords(): Map<number, number> {
    const pending = new Map<number, number>();
    for (const [shard, runner] of this.runners) if (runner.pendingRecords !== undefined) pending.set(shard, runner.pendingRecords);
    return pending;
  }

  /** Per owned shard that is running, what its state holds (what a billing instance's memory grows with). */
  stateSizes(): Map<number, { accounts: number; openMonths: number; revisableWindows: number }> {
    const sizes = new Map<number, { accounts: number; openMonths: number; revisableWindows: number }>();
    for (const [shard, runner] of this.runners) {
      const state = runner.current;
      if (state) sizes.set(shard, { accounts: state.accountCount, openMonths: state.openMonthCount, revisableWindows: state.revisableWindows });
    }
    return sizes;
  }

  get ownedShards(): number[] {
    return [...this.runners.keys()].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    const { options } = this;
    this.leases = await PartitionLeases.open(
      options.js,
      {
        instanceId: options.instanceId,
        partitions: options.spendShards,
        leaseTtlMs: options.leaseTtlMs,
        renewIntervalMs: options.renewIntervalMs,
        replicas: options.replicas,
        leaseBucket: BILLING_LEASE_BUCKET,
        memberBucket: BILLING_MEMBER_BUCKET,
        keyPrefix: 'shard-',
      },
      {
        acquired: (shard) => {
          const runner = new ShardRunner(
            shard,
            options.nc,
            options.js,
            this.snapshots,
            options.store,
            options.deadLetters,
            { ...options.shard, shard },
            { ...options.runner, maxUnflushedAccounts: () => Math.max(1, Math.floor((options.maxUnflushedAccounts ?? 160_000) / Math.max(1, this.runners.size))) },
            options.observer,
          );
          this.runners.set(shard, runner);
          runner.start();
        },
        lost: (shard) => {
          const runner = this.runners.get(shard);
          this.runners.delete(shard);
          void runner?.stop(false);
        },
        release: async (shard) => {
          const runner = this.runners.get(shard);
          this.runners.delete(shard);
          await runner?.stop(true);
        },
      },
      options.onLeaseError,
    );
    this.leases.start();
  }

  /** Hands every shard over: final flush and snapshot, then the leases are released. */
  async stop(): Promise<void> {
    await this.leases?.stop();
    await Promise.all([...this.runners.values()].map((runner) => runner.stop(true)));
    this.runners.clear();
  }
}
