import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
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
  const store = await KvAccountSpendStore.open(jetstream(nc), { bucket: 'contract-accounts', outboxMarkerGraceMs: 0, connection: nc });
  return { store, cleanup: () => store.close() };
});

accountSpendStoreContract('JetStream KV through the @nats-io/kv methods, without cache', async () => {
  const store = await KvAccountSpendStore.open(jetstream(nc as NatsConnection), { bucket: 'contract-accounts-kv', outboxMarkerGraceMs: 0, cachedAccounts: 0 });
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

describe('KvAccountSpendStore revision cache (two instances sharing a bucket)', () => {
  const MONTH = '2026-11';
  type Document = import('./account-spend-store').AccountSpendDocument;
  type Update<R> = import('./account-spend-store').AccountUpdate<R>;
  const newDocument = (accountId: string): Document => ({
    account: { accountId, timeZone: 'UTC', thresholdVersion: 0, openLedgerMonths: [], outbox: [], createdAtMs: 1, updatedAtMs: 1 },
    months: {},
  });
  /** Adds `amount` under `key` once; answers whether it applied. */
  const addOnce = (accountId: string, key: string, amount: number): Update<boolean> => ({
    months: () => [MONTH],
    apply: (current) => {
      const document = current ?? newDocument(accountId);
      const record = document.months[MONTH] ?? {
        month: MONTH, totalMinor: 0, transactionCount: 0, ledger: {}, ledgerSealed: false, alertedThresholdVersion: 0, newestEventAtMs: 0, updatedAtMs: 1,
      };
      if (record.ledger[key]) return { next: undefined, result: false };
      record.ledger[key] = [1, amount, 1];
      record.totalMinor += amount;
      record.transactionCount += 1;
      document.months[MONTH] = record;
      return { next: document, result: true };
    },
  });
  /** Writes nothing; answers the total it saw. */
  const totalSeen = (): Update<number> => ({ months: () => [MONTH], apply: (current) => ({ next: undefined, result: current?.months[MONTH]?.totalMinor ?? 0 }) });

  let server: NatsHandle | undefined;
  let connection: NatsConnection | undefined;
  afterAll(async () => {
    await connection?.close();
    await server?.stop();
  });

  it('never loses, doubles or answers from a stale cached entry when another instance wrote meanwhile', async () => {
    server = await startNats();
    connection = await connect({ servers: server.url });
    // One instance with the direct requests, one with the @nats-io/kv methods: both write the same entries.
    const a = await KvAccountSpendStore.open(jetstream(connection), { bucket: 'cache-accounts', connection });
    const b = await KvAccountSpendStore.open(jetstream(connection), { bucket: 'cache-accounts' });
    expect(await a.update('acct-1', addOnce('acct-1', 'w1', 100))).toBe(true); // a caches revision 1
    expect(await b.update('acct-1', addOnce('acct-1', 'w2', 10))).toBe(true); // b reads, writes revision 2
    // a's cache is stale: its compare-and-set fails, it reads and applies on the current entry.
    expect(await a.update('acct-1', addOnce('acct-1', 'w3', 1))).toBe(true);
    // b's cache is stale: "w3 already applied?" must be decided on the current entry, not b's copy.
    expect(await b.update('acct-1', addOnce('acct-1', 'w3', 1))).toBe(false);
    // An update that writes nothing is answered from the current entry, not a stale cached one.
    expect(await a.update('acct-1', addOnce('acct-1', 'w4', 1000))).toBe(true);
    expect(await b.update('acct-1', totalSeen())).toBe(1111);
    // Interleaved concurrent writers of both instances, each write also retried: every key once.
    const keys = Array.from({ length: 40 }, (_, index) => `k${index}`);
    const outcomes = await Promise.all(
      [...keys, ...keys].map((key, index) => (index % 2 === 0 ? a : b).update('acct-1', addOnce('acct-1', key, 1))),
    );
    expect(outcomes.filter(Boolean)).toHaveLength(40);
    const document = await a.read('acct-1', () => [MONTH]);
    expect(document?.months[MONTH]?.totalMinor).toBe(1111 + 40);
    expect(document?.months[MONTH]?.transactionCount).toBe(4 + 40);
    expect(await a.update('acct-1', totalSeen())).toBe(1151);
    expect(await b.update('acct-1', totalSeen())).toBe(1151);
  }, 60_000);

  it('reads when the cached entry was deleted by another writer (no update against a vanished revision)', async () => {
    const a = await KvAccountSpendStore.open(jetstream(connection as NatsConnection), { bucket: 'cache-accounts-2', connection });
    const kv = await new Kvm(jetstream(connection as NatsConnection)).open('cache-accounts-2');
    expect(await a.update('acct-2', addOnce('acct-2', 'w1', 5))).toBe(true);
    await kv.delete(kvKeyOfAccount('acct-2'));
    expect(await a.update('acct-2', totalSeen())).toBe(0);
    expect(await a.update('acct-2', addOnce('acct-2', 'w1', 5))).toBe(true);
    expect((await a.read('acct-2', () => [MONTH]))?.months[MONTH]?.totalMinor).toBe(5);
  }, 30_000);

  it('bounds the cache by size (least recently updated evicted first) and stays exact for evicted accounts', async () => {
    const bytesOf = (store: KvAccountSpendStore) => (store as unknown as { cacheBytes: number }).cacheBytes;
    const cacheOf = (store: KvAccountSpendStore) => (store as unknown as { cache: Map<string, unknown> }).cache;
    const a = await KvAccountSpendStore.open(jetstream(connection as NatsConnection), { bucket: 'cache-accounts-3', connection, cacheMaxBytes: 2_000 });
    for (let index = 0; index < 20; index++) expect(await a.update(`acct-${index}`, addOnce(`acct-${index}`, 'w1', 1))).toBe(true);
    expect(bytesOf(a)).toBeLessThanOrEqual(2_000);
    expect(cacheOf(a).size).toBeGreaterThan(0);
    expect(cacheOf(a).size).toBeLessThan(20);
    expect(cacheOf(a).has(kvKeyOfAccount('acct-19'))).toBe(true);
    expect(cacheOf(a).has(kvKeyOfAccount('acct-0'))).toBe(false);
    for (let index = 0; index < 20; index++) {
      expect(await a.update(`acct-${index}`, addOnce(`acct-${index}`, 'w1', 1))).toBe(false);
      expect(await a.update(`acct-${index}`, addOnce(`acct-${index}`, 'w2', 2))).toBe(true);
      expect(await a.update(`acct-${index}`, totalSeen())).toBe(3);
    }
    let recount = 0;
    for (const [key, entry] of cacheOf(a) as Map<string, { json: string }>) recount += key.length + entry.json.length + 160;
    expect(bytesOf(a)).toBe(recount);
    const none = await KvAccountSpendStore.open(jetstream(connection as NatsConnection), { bucket: 'cache-accounts-3', connection, cacheMaxBytes: 10 });
    expect(await none.update('acct-0', addOnce('acct-0', 'w3', 4))).toBe(true);
    expect(cacheOf(none).size).toBe(0);
    expect(await a.update('acct-0', totalSeen())).toBe(7);
  }, 30_000);
});
