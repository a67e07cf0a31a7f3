import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { KvAccountStateStore } from './kv-account-state-store';
import { accountStateStoreContract, contractShardOf } from './testing/account-state-store-contract';

let nats: NatsHandle | undefined;
let nc: NatsConnection | undefined;
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

accountStateStoreContract('JetStream KV (real nats-server)', async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  const js = jetstream(nc);
  const store = await KvAccountStateStore.open(nc, { bucket: 'contract-state', shardOf: contractShardOf, legacyBucket: 'contract-legacy', maxWritesInFlight: 3 });
  return {
    store,
    writeLegacyAccount: async () => {
      await (await new Kvm(js).create('contract-legacy')).put('acct-1', new TextEncoder().encode('{}'));
    },
    cleanup: () => store.close(),
  };
});

describe('KvAccountStateStore bulk write (real nats-server)', () => {
  let server: NatsHandle | undefined;
  let connection: NatsConnection | undefined;
  beforeAll(async () => {
    server = await startNats();
    connection = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await connection?.close();
    await server?.stop();
  });
  const monthOf = (accountId: string, totalMinor: number, position: number) => ({
    accountId,
    month: '2026-12',
    totalMinor,
    transactionCount: 1,
    alertedThresholdVersion: 0,
    newestEventAtMs: Date.UTC(2026, 11, 5),
    position,
  });

  it('stores every record of a large write without acknowledging each, and proves it by the check entry', async () => {
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'bulk', shardOf: () => 1, recordsPerFlush: 1_000 });
    const months = Array.from({ length: 20_000 }, (_, i) => monthOf(`acct-${i}`, 100 + i, 1 + (i % 50)));
    await store.write(1, 50, { accounts: [], months });
    expect(store.fallbackWrites).toBe(0);
    expect(await store.flushedPosition(1)).toBe(50);
    for (const i of [0, 1, 9_999, 19_999]) expect((await store.readMonth(`acct-${i}`, '2026-12'))?.totalMinor).toBe(100 + i);
    const status = await (await new Kvm(jetstream(connection as NatsConnection)).open(store.bucketName(1))).status();
    // 20,000 records, the check entry and the position.
    expect(status.values).toBe(20_002);
  });

  it('notices a record the broker did not store, and then neither claims the write nor raises the position', async () => {
    // A bucket whose values may not exceed 300 bytes: one record of the write is refused.
    await new Kvm(jetstream(connection as NatsConnection)).create('refusing-3', { history: 1, maxValueSize: 300 });
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'refusing', shardOf: () => 3 });
    const months = [monthOf('fits-1', 100, 1), { ...monthOf(`too-long-${'x'.repeat(400)}`, 200, 2) }, monthOf('fits-2', 300, 2)];
    await expect(store.write(3, 2, { accounts: [], months })).rejects.toThrow(/maximum|size|exceed/i);
    expect(store.fallbackWrites).toBe(1);
    expect(await store.flushedPosition(3)).toBe(0);
  });
});
