import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, waitFor, type NatsHandle } from '@tollstream/testing';
import { assignPartitions, PartitionLeases, type PartitionLeaseOptions, type PartitionOwner } from './partition-leases';

/** An owner that records what the leases tell it. */
class RecordingOwner implements PartitionOwner {
  readonly owned = new Set<number>();
  readonly lostOnes: number[] = [];
  readonly released: number[] = [];
  acquired(partition: number): void {
    this.owned.add(partition);
  }
  lost(partition: number): void {
    this.owned.delete(partition);
    this.lostOnes.push(partition);
  }
  async release(partition: number): Promise<void> {
    this.owned.delete(partition);
    this.released.push(partition);
  }
  get sorted(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }
}

const ALL = [0, 1, 2, 3, 4, 5, 6, 7];

describe('PartitionLeases against nats-server', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  const running: PartitionLeases[] = [];
  const connections: NatsConnection[] = [];
  const errors: unknown[] = [];
  let bucketNumber = 0;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((leases) => leases.stop()));
    await Promise.all(connections.splice(0).map((connection) => connection.close()));
    errors.length = 0;
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  // Fresh buckets per test: nothing held over from the previous one.
  const optionsFor = (overrides: Partial<PartitionLeaseOptions> = {}): Omit<PartitionLeaseOptions, 'instanceId'> => {
    bucketNumber++;
    return {
      partitions: ALL.length,
      leaseTtlMs: 10_000,
      renewIntervalMs: 100,
      replicas: 1,
      leaseBucket: `spec-leases-${bucketNumber}`,
      memberBucket: `spec-members-${bucketNumber}`,
      keyPrefix: 'shard-',
      ...overrides,
    };
  };
  const member = async (client: JetStreamClient, instanceId: string, options: Omit<PartitionLeaseOptions, 'instanceId'>, owner: PartitionOwner) => {
    const leases = await PartitionLeases.open(client, { ...options, instanceId }, owner, (error) => errors.push(error));
    running.push(leases);
    leases.start();
    return leases;
  };
  const expectedShares = (members: string[]) => {
    const owners = assignPartitions(ALL.length, members);
    return (instance: string) => ALL.filter((partition) => owners[partition] === instance);
  };

  it('splits the partitions between two members, with lease keys under the given prefix in the given bucket', async () => {
    const options = optionsFor();
    const [a, b] = [new RecordingOwner(), new RecordingOwner()];
    const leasesA = await member(js, 'member-a', options, a);
    const leasesB = await member(js, 'member-b', options, b);
    const share = expectedShares(['member-a', 'member-b']);

    await waitFor(() => a.sorted.join() === share('member-a').join() && b.sorted.join() === share('member-b').join(), {
      description: 'the rendezvous assignment',
    });
    expect(a.sorted.length + b.sorted.length).toBe(ALL.length);
    expect(a.sorted.filter((partition) => b.owned.has(partition))).toEqual([]);
    expect(leasesA.ownedPartitions).toEqual(a.sorted);
    expect(leasesB.ownedPartitions).toEqual(b.sorted);

    const kv = await new Kvm(js).open(options.leaseBucket);
    const keys: string[] = [];
    for await (const key of await kv.keys()) keys.push(key);
    expect(keys.sort()).toEqual(ALL.map((partition) => `shard-${partition}`).sort());
    const holder = await kv.get('shard-0');
    expect(JSON.parse(holder?.string() ?? '{}')).toEqual({ owner: share('member-a').includes(0) ? 'member-a' : 'member-b' });
  });

  it('hands every partition to the other member at once when one stops gracefully', async () => {
    const options = optionsFor({ leaseTtlMs: 20_000 }); // far longer than the test: only the release can explain a takeover
    const [a, b] = [new RecordingOwner(), new RecordingOwner()];
    await member(js, 'member-a', options, a);
    const leasesB = await member(js, 'member-b', options, b);
    await waitFor(() => a.owned.size > 0 && b.owned.size > 0 && a.owned.size + b.owned.size === ALL.length);
    const heldByB = b.sorted;

    const stoppedAt = Date.now();
    await leasesB.stop();
    running.splice(running.indexOf(leasesB), 1);
    expect(b.released.sort((x, y) => x - y)).toEqual(heldByB);
    expect(leasesB.ownedPartitions).toEqual([]);

    await waitFor(() => a.sorted.join() === ALL.join(), { timeoutMs: 5_000, description: 'member-a owning everything' });
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    expect(a.lostOnes).toEqual([]);
  });

  it('gives the leases of a member that stops renewing to the other once the TTL has passed', async () => {
    const leaseTtlMs = 1_500;
    const options = optionsFor({ leaseTtlMs, renewIntervalMs: 150 });
    const [survivor, silent] = [new RecordingOwner(), new RecordingOwner()];
    await member(js, 'member-a', options, survivor);
    // The silent member has its own connection, closed below: it can no longer renew (a crash, a partition).
    const silentConnection = await connect({ servers: nats.url });
    connections.push(silentConnection);
    await member(jetstream(silentConnection), 'member-b', options, silent);
    await waitFor(() => survivor.owned.size > 0 && silent.owned.size > 0 && survivor.owned.size + silent.owned.size === ALL.length);
    const heldBySurvivor = survivor.sorted;

    await silentConnection.close();
    const silencedAt = Date.now();
    await waitFor(() => survivor.sorted.join() === ALL.join(), { timeoutMs: 10_000, description: 'survivor owning everything' });
    // Not before the lease TTL (less the last renewal's head start): a live owner's lease is never taken.
    expect(Date.now() - silencedAt).toBeGreaterThanOrEqual(leaseTtlMs - options.renewIntervalMs);
    expect(survivor.lostOnes).toEqual([]);
    expect(survivor.sorted.filter((partition) => !heldBySurvivor.includes(partition))).toEqual(ALL.filter((partition) => !heldBySurvivor.includes(partition)));
  });

  it('refuses a key prefix that is no KV key', async () => {
    await expect(PartitionLeases.open(js, { ...optionsFor({ keyPrefix: 'shard *' }), instanceId: 'x' }, new RecordingOwner(), () => undefined)).rejects.toThrow(/key prefix/);
  });
});
