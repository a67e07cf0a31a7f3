import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { KvInboxStore } from './kv-inbox-store';
import { inboxStoreContract } from './testing/inbox-store-contract';

let nats: NatsHandle | undefined;
let nc: NatsConnection | undefined;
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

inboxStoreContract('JetStream KV (real nats-server)', async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  const store = await KvInboxStore.open(jetstream(nc), { bucket: 'contract-inbox' });
  return { store, cleanup: () => store.close() };
});

describe('KvInboxStore size bound', () => {
  it('drops the oldest notifications beyond the bound but still deduplicates their alerts', async () => {
    const store = await KvInboxStore.open(jetstream(nc as NatsConnection), { bucket: 'bounded-inbox', maxNotificationsPerAccount: 3 });
    for (let i = 1; i <= 5; i++) await store.append({ accountId: 'a', alertId: `x-${i}`, title: '', body: '', payload: '', createdAtMs: i });
    expect((await store.readAfter('a', 0, 10)).map((n) => n.sequence)).toEqual([3, 4, 5]);
    expect((await store.append({ accountId: 'a', alertId: 'x-1', title: '', body: '', payload: '', createdAtMs: 9 })).created).toBe(false);
    expect((await store.append({ accountId: 'a', alertId: 'x-6', title: '', body: '', payload: '', createdAtMs: 9 })).notification.sequence).toBe(6);
  });
});
