import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';

export interface PartitionLeaseOptions {
  /** Unique per running process (e.g. pod name + random suffix). */
  instanceId: string;
  partitions: number;
  /** A lease not renewed for this long may be taken by another instance; also how long a dead member stays listed. */
  leaseTtlMs: number;
  /** How often leases and membership are renewed and the assignment re-evaluated. */
  renewIntervalMs: number;
  replicas: number;
  /** KV bucket of the leases, one key per partition. Each service has its own (e.g. `windower-leases`). */
  leaseBucket: string;
  /** KV bucket of the live members (entries expire after the lease TTL). */
  memberBucket: string;
  /** Key of partition p's lease is `${keyPrefix}${p}` (e.g. `partition-` gives `partition-3`). */
  keyPrefix: string;
}

/** What the owner of the leases does with partitions. */
export interface PartitionOwner {
  /** The lease is ours: start processing (asynchronously; must not throw). */
  acquired(partition: number): void;
  /** The lease was taken by someone else (we failed to renew in time): stop at once, no checkpoint. */
  lost(partition: number): void;
  /** Another instance should own it: checkpoint and stop; the lease is released when this resolves. */
  release(partition: number): Promise<void>;
}

interface Lease {
  owner: string;
}

// What NATS KV accepts in a key; checked up front so a bad prefix fails at open, not at the first tick.
const KEY_PREFIX = /^[-/_=.a-zA-Z0-9]*$/;

const decode = (entry: KvEntry): Lease | undefined => {
  if (entry.operation !== 'PUT') return undefined;
  try {
    return JSON.parse(entry.string()) as Lease;
  } catch {
    return undefined;
  }
};

/**
 * Shares the partitions (or shards) of a stream among the instances of a service, with state held
 * in NATS (JetStream KV), not in a home-made cluster protocol (ADR 0006, shared since ADR 0013):
 * - membership: every instance puts its id into a KV bucket whose entries expire after the lease
 *   TTL; the live members are the keys present;
 * - assignment: rendezvous hashing of (member, partition), so each partition has one desired
 *   owner and a member joining or leaving moves only its share;
 * - leases: a key per partition, renewed with compare-and-set on its revision; only the desired
 *   owner takes a free or expired lease, and an owner that fails to renew stops processing at once.
 * Two instances may briefly both process a partition (a paused process whose lease expired): the
 * owner's processing must tolerate that (deterministic, deduplicated output).
 */
export class PartitionLeases {
  private readonly owned = new Map<number, number>(); // partition -> lease revision
  private readonly releasing = new Set<number>();
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private stopped = false;

  private constructor(
    private readonly options: PartitionLeaseOptions,
    private readonly leases: KV,
    private readonly members: KV,
    private readonly owner: PartitionOwner,
    private readonly onError: (error: unknown) => void,
  ) {}

  static async open(
    js: JetStreamClient,
    options: PartitionLeaseOptions,
    owner: PartitionOwner,
    onError: (error: unknown) => void,
  ): Promise<PartitionLeases> {
    if (!KEY_PREFIX.test(options.keyPrefix)) throw new Error(`lease key prefix ${JSON.stringify(options.keyPrefix)} is not a valid KV key prefix`);
    if (options.leaseBucket === options.memberBucket) throw new Error(`leases and members need separate buckets (both ${options.leaseBucket})`);
    const kvm = new Kvm(js);
    const leases = await kvm.create(options.leaseBucket, { history: 1, replicas: options.replicas });
    const members = await kvm.create(options.memberBucket, { history: 1, replicas: options.replicas, ttl: options.leaseTtlMs });
    return new PartitionLeases(options, leases, members, owner, onError);
  }

  get ownedPartitions(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.ticking = this.tick()
        .catch((error: unknown) => this.onError(error))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.options.renewIntervalMs);
        });
    };
    loop();
  }

  /** Releases every lease (after the owner checkpointed) and leaves the membership. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    await Promise.all(this.ownedPartitions.map((partition) => this.releaseLease(partition)));
    await this.members.delete(this.options.instanceId).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    await this.members.put(this.options.instanceId, JSON.stringify({ at: new Date().toISOString() }));
    const assignment = assignPartitions(this.options.partitions, await this.liveMembers());
    for (let partition = 0; partition < this.options.partitions; partition++) {
      if (this.stopped) return;
      const desired = assignment[partition] === this.options.instanceId;
      const revision = this.owned.get(partition);
      if (revision !== undefined) {
        if (this.releasing.has(partition)) continue;
        if (!desired) {
          this.releasing.add(partition);
          void this.releaseLease(partition).catch((error: unknown) => this.onError(error));
          continue;
        }
        await this.renew(partition, revision);
      } else if (desired) {
        await this.tryAcquire(partition);
      }
    }
  }

  private async liveMembers(): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of await this.members.keys()) keys.push(key);
    if (!keys.includes(this.options.instanceId)) keys.push(this.options.instanceId);
    return keys.sort();
  }

  private leaseKey(partition: number): string {
    return `${this.options.keyPrefix}${partition}`;
  }

  private leaseValue(): string {
    return JSON.stringify({ owner: this.options.instanceId } satisfies Lease);
  }

  private async renew(partition: number, revision: number): Promise<void> {
    try {
      this.owned.set(partition, await this.leases.update(this.leaseKey(partition), this.leaseValue(), revision));
    } catch (error) {
      // Someone took it (our renewals were too late) or the broker refused: we may no longer own it.
      this.owned.delete(partition);
      this.owner.lost(partition);
      this.onError(new Error(`lease of partition ${partition} lost: ${error instanceof Error ? error.message : String(error)}`));
    }
  }

  private async tryAcquire(partition: number): Promise<void> {
    const key = this.leaseKey(partition);
    const entry = await this.leases.get(key);
    const lease = entry ? decode(entry) : undefined;
    let revision: number;
    try {
      if (!entry) {
        revision = await this.leases.create(key, this.leaseValue());
      } else if (!lease || lease.owner === this.options.instanceId || Date.now() - entry.created.getTime() >= this.options.leaseTtlMs) {
        // Free (deleted), ours from an earlier life, or expired.
        revision = await this.leases.update(key, this.leaseValue(), entry.revision);
      } else {
        return; // held by a live owner: it releases when it sees the new assignment
      }
    } catch {
      return; // another instance won the race; the next tick looks again
    }
    this.owned.set(partition, revision);
    this.owner.acquired(partition);
  }

  private async releaseLease(partition: number): Promise<void> {
    try {
      await this.owner.release(partition);
      const revision = this.owned.get(partition);
      this.owned.delete(partition);
      if (revision !== undefined) await this.leases.delete(this.leaseKey(partition), { previousSeq: revision }).catch(() => undefined);
    } finally {
      this.releasing.delete(partition);
    }
  }
}

/**
 * Owner of every partition: rendezvous (highest random weight) hashing with bounded load. Each
 * partition goes to the highest-scoring member that has fewer than ceil(P / members) partitions,
 * so the load is balanced (plain rendezvous hashing can leave a member with nothing), every
 * instance computes the same answer from the same member list, and a member joining or leaving
 * moves few partitions.
 */
export function assignPartitions(partitions: number, members: readonly string[]): string[] {
  const sorted = [...new Set(members)].sort();
  if (sorted.length === 0) return [];
  const capacity = Math.ceil(partitions / sorted.length);
  const load = new Map(sorted.map((member) => [member, 0]));
  const owners: string[] = [];
  for (let partition = 0; partition < partitions; partition++) {
    const ranked = sorted
      .map((member) => ({ member, score: createHash('sha1').update(`${member}/${partition}`).digest().readUInt32BE(0) }))
      .sort((a, b) => b.score - a.score || (a.member < b.member ? -1 : 1));
    const owner = ranked.find(({ member }) => (load.get(member) ?? 0) < capacity)?.member ?? ranked[0].member;
    load.set(owner, (load.get(owner) ?? 0) + 1);
    owners.push(owner);
  }
  return owners;
}
