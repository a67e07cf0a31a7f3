import type { JetStreamClient } from '@nats-io/jetstream';
import { PartitionLeases, type DeadLetterPublisher } from '@tollstream/messaging';
import { CheckpointStore } from './checkpoint-store';
import { LEASE_BUCKET, LEASE_KEY_PREFIX, MEMBER_BUCKET } from './partition-leases';
import type { PartitionProcessorOptions } from './partition-processor';
import { PartitionRunner, type PartitionRunnerSettings, type WindowerObserver } from './partition-runner';

export interface WindowerOptions {
  instanceId: string;
  /** Partitions of the transaction stream (TOLL_TX_PARTITIONS). */
  partitions: number;
  replicas: number;
  leaseTtlMs: number;
  renewIntervalMs: number;
  processor: Omit<PartitionProcessorOptions, 'partition'>;
  /** Changes whenever the window configuration changes: old state is then not restored. */
  configFingerprint: string;
  /** The configuration behind the fingerprint, stored for operators to compare. */
  configDescription: unknown;
  /**
   * What to do when the stored configuration differs: 'refuse' to start (default: results would be
   * recomputed under new window ids and readers such as billing would count them again), or
   * 'recompute' every window from the start of the stream (downstream reset by the operator).
   */
  onConfigurationChange: 'refuse' | 'recompute';
  checkpointIntervalMs: number;
  heartbeatIntervalMs: number;
  maxPublishesInFlight: number;
}

export interface WindowerEvents extends WindowerObserver {
  ownership?(partitions: number[]): void;
  leaseError?(error: unknown): void;
}

/**
 * One windower instance: takes the partitions that its leases give it, runs each, and hands them
 * over (checkpoint first) when the assignment changes or on shutdown.
 */
export class Windower {
  private readonly runners = new Map<number, PartitionRunner>();

  private constructor(
    private readonly options: WindowerOptions,
    private readonly js: JetStreamClient,
    private readonly checkpoints: CheckpointStore,
    private readonly deadLetters: DeadLetterPublisher,
    private readonly events: WindowerEvents,
    private leases?: PartitionLeases,
  ) {}

  static async start(js: JetStreamClient, deadLetters: DeadLetterPublisher, options: WindowerOptions, events: WindowerEvents = {}): Promise<Windower> {
    const checkpoints = await CheckpointStore.open(js, { replicas: options.replicas });
    await checkConfiguration(checkpoints, options);
    const windower = new Windower(options, js, checkpoints, deadLetters, events);
    windower.leases = await PartitionLeases.open(
      js,
      {
        instanceId: options.instanceId,
        partitions: options.partitions,
        leaseTtlMs: options.leaseTtlMs,
        renewIntervalMs: options.renewIntervalMs,
        replicas: options.replicas,
        leaseBucket: LEASE_BUCKET,
        memberBucket: MEMBER_BUCKET,
        keyPrefix: LEASE_KEY_PREFIX,
      },
      {
        acquired: (partition) => windower.startPartition(partition),
        lost: (partition) => void windower.stopPartition(partition, false),
        release: (partition) => windower.stopPartition(partition, true),
      },
      (error) => events.leaseError?.(error),
    );
    windower.leases.start();
    return windower;
  }

  get ownedPartitions(): number[] {
    return [...this.runners.keys()].sort((a, b) => a - b);
  }

  /** Checkpoints and releases every partition, so that other instances take over at once. */
  async stop(): Promise<void> {
    await this.leases?.stop();
    await Promise.all(this.ownedPartitions.map((partition) => this.stopPartition(partition, true)));
  }

  private startPartition(partition: number): void {
    if (this.runners.has(partition)) return;
    const settings: PartitionRunnerSettings = {
      checkpointIntervalMs: this.options.checkpointIntervalMs,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      maxPublishesInFlight: this.options.maxPublishesInFlight,
      checkpointName: (p) => `partition-${p}-${this.options.configFingerprint}`,
    };
    const runner = new PartitionRunner(
      partition,
      this.js,
      this.checkpoints,
      this.deadLetters,
      { ...this.options.processor, partition },
      settings,
      this.events,
    );
    this.runners.set(partition, runner);
    runner.start();
    this.events.ownership?.(this.ownedPartitions);
  }

  private async stopPartition(partition: number, checkpoint: boolean): Promise<void> {
    const runner = this.runners.get(partition);
    if (!runner) return;
    this.runners.delete(partition);
    await runner.stop(checkpoint);
    this.events.ownership?.(this.ownedPartitions);
  }
}

export class WindowConfigurationChangedError extends Error {}

const CONFIGURATION_OBJECT = 'configuration';

/** Guards against a silent change of window shapes, which downstream readers would count twice. */
async function checkConfiguration(checkpoints: CheckpointStore, options: WindowerOptions): Promise<void> {
  const stored = await checkpoints.readJson<{ fingerprint: string; configuration: unknown }>(CONFIGURATION_OBJECT);
  if (stored && stored.fingerprint !== options.configFingerprint && options.onConfigurationChange === 'refuse') {
    throw new WindowConfigurationChangedError(
      `the window configuration differs from the one the published results were computed with ` +
        `(${JSON.stringify(stored.configuration)} -> ${JSON.stringify(options.configDescription)}). ` +
        `Recomputing would publish every window again under new ids, and billing would add them to the totals it has. ` +
        `Restore the old settings, or reset the readers of TOLL_AGG and start once with WINDOWER_ON_CONFIGURATION_CHANGE=recompute (docs/windower.md).`,
    );
  }
  if (!stored || stored.fingerprint !== options.configFingerprint) {
    await checkpoints.writeJson(CONFIGURATION_OBJECT, { fingerprint: options.configFingerprint, configuration: options.configDescription });
  }
}
