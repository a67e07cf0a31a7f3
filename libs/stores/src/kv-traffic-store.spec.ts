import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { KvTrafficDetectionStore, KvTrafficReferenceStore } from './kv-traffic-store';
import { trafficStoreContract } from './testing/traffic-store-contract';

let nats: NatsHandle | undefined;
let nc: NatsConnection | undefined;
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

trafficStoreContract('JetStream KV (real nats-server)', async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  const js = jetstream(nc);
  const references = await KvTrafficReferenceStore.open(js, { bucket: 'contract-traffic-references' });
  const detection = await KvTrafficDetectionStore.open(js, { bucket: 'contract-traffic-detection' });
  return { references, detection, cleanup: async () => undefined };
});
