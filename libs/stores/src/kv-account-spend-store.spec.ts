import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { KvAccountSpendStore, kvKeyOfAccount } from './kv-account-spend-store';
import { accountSpendStoreContract } from './testing/account-spend-store-contract';

let nats: NatsHandle | undefined;
let nc: NatsConnection | undefined;
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

accountSpendStoreContract('JetStream KV (real nats-server)', async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  // Markers without grace, so that the contract's "no longer named" holds at once.
  const store = await KvAccountSpendStore.open(jetstream(nc), { bucket: 'contract-accounts', outboxMarkerGraceMs: 0 });
  return { store, cleanup: () => store.close() };
});

describe('kvKeyOfAccount', () => {
  it('keeps plain ids and escapes everything else injectively', () => {
    expect(kvKeyOfAccount('acct-00001_x')).toBe('acct-00001_x');
    expect(kvKeyOfAccount('a.b')).toBe('a=2eb');
    expect(kvKeyOfAccount('a=2eb')).toBe('a=3d2eb');
    expect(kvKeyOfAccount('ä')).toBe('=c3=a4');
    expect(() => kvKeyOfAccount('')).toThrow(/empty/);
  });
});
