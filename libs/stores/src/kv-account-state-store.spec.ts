import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { KvAccountStateStore } from './kv-account-state-store';
import { accountStateStoreContract } from './testing/account-state-store-contract';

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
  const store = await KvAccountStateStore.open(js, { bucket: 'contract-state', legacyBucket: 'contract-legacy', maxWritesInFlight: 3 });
  return {
    store,
    writeLegacyAccount: async () => {
      await (await new Kvm(js).create('contract-legacy')).put('acct-1', new TextEncoder().encode('{}'));
    },
    cleanup: () => store.close(),
  };
});
