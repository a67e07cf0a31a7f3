import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type NatsHandle } from '@tollstream/testing';
import type { AccountStateSource } from './account-state-store';
import { KvAccountStateStore } from './kv-account-state-store';
import { kvKeyOfAccount } from './kv-account-spend-store';
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
  const store = await KvAccountStateStore.open(nc, { bucket: 'contract-state', shardOf: contractShardOf, legacyBucket: 'contract-legacy', maxWritesInFlight: 3, pagesPerShard: 4, compactAfterChanges: 2 });
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

  const kvm = () => new Kvm(jetstream(connection as NatsConnection));
  const pageRevisions = async (bucket: string) => {
    const info = await (await jetstreamManager(connection as NatsConnection)).streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.page.>` });
    return info.state.subjects ?? {};
  };

  it('packs a large write into one entry per page, published without acknowledging each, proven by the check entry', async () => {
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'bulk', shardOf: () => 1, pagesPerShard: 64 });
    const months = Array.from({ length: 20_000 }, (_, i) => monthOf(`acct-${i}`, 100 + i, 1 + (i % 50)));
    await store.write(1, 50, { accounts: [], months });
    expect(store.fallbackWrites).toBe(0);
    expect(await store.flushedPosition(1)).toBe(50);
    for (const i of [0, 1, 9_999, 19_999]) expect((await store.readMonth(`acct-${i}`, '2026-12'))?.totalMinor).toBe(100 + i);
    // 64 page entries of the month (not 20,000), the layout, the list of months, the check entry and the position.
    const revisions = await pageRevisions(store.bucketName(1));
    expect(Object.keys(revisions).every((subject) => subject.startsWith(`$KV.${store.bucketName(1)}.page.2026-12.`))).toBe(true);
    expect(Object.keys(revisions)).toHaveLength(64);
    expect((await (await kvm().open(store.bucketName(1))).status()).values).toBe(64 + 4);
  });

  it("keeps each month's records in pages of their own: a new month's writes leave an earlier month's pages alone", async () => {
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'by-month', shardOf: () => 4, pagesPerShard: 8 });
    const accounts = Array.from({ length: 50 }, (_, i) => `acct-${i}`);
    await store.write(4, 1, { accounts: [], months: accounts.map((accountId) => ({ ...monthOf(accountId, 100, 1), month: '2026-11' })) });
    const november = await pageRevisions(store.bucketName(4));
    for (let position = 2; position <= 6; position++) {
      await store.write(4, position, { accounts: [], months: accounts.map((accountId) => monthOf(accountId, 100 * position, position)) });
    }
    const after = await pageRevisions(store.bucketName(4));
    for (const [subject, count] of Object.entries(november)) expect(after[subject]).toBe(count);
    expect((await store.listMonths('acct-7', { limit: 5 })).map((m) => [m.month, m.totalMinor])).toEqual([['2026-12', 600], ['2026-11', 100]]);
    expect((await store.listMonths('acct-7', { beforeMonth: '2026-12', limit: 5 })).map((m) => m.month)).toEqual(['2026-11']);
    expect(await store.readMonth('acct-7', 'not-a-month')).toBeUndefined();
  });

  it('writes only the changed records of a page between complete entries, and reads fold them by position', async () => {
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'folding', shardOf: () => 2, pagesPerShard: 2, compactAfterChanges: 3 });
    const accounts = Array.from({ length: 40 }, (_, i) => `acct-${i}`);
    const totals = new Map<string, number>();
    for (let flush = 1; flush <= 30; flush++) {
      // Each flush changes a few accounts; the rest must survive in earlier entries of their page.
      const changed = accounts.filter((_, i) => (i * 7 + flush) % 5 === 0);
      const months = changed.map((accountId) => {
        const total = (totals.get(accountId) ?? 0) + flush;
        totals.set(accountId, total);
        return monthOf(accountId, total, flush);
      });
      await store.write(2, flush, { accounts: [], months });
    }
    for (const accountId of accounts) expect((await store.readMonth(accountId, '2026-12'))?.totalMinor).toBe(totals.get(accountId));
    // Complete entries were written again and again, and the history the bucket keeps per page stays bounded.
    expect(store.compactions).toBeGreaterThan(4);
    for (const count of Object.values(await pageRevisions(store.bucketName(2)))) expect(count).toBeLessThanOrEqual(31);

    // Another process (a new owner after a restart) writes a complete entry of each page it touches
    // first, from the page's history: the accounts it does not change keep their totals.
    const successor = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'folding', shardOf: () => 2, pagesPerShard: 2, compactAfterChanges: 3 });
    await successor.write(2, 31, { accounts: [], months: [monthOf('acct-0', 99_999, 31)] });
    expect([successor.compactions, successor.pagesReadBack]).toEqual([1, 1]);
    expect((await successor.readMonth('acct-0', '2026-12'))?.totalMinor).toBe(99_999);
    for (const accountId of accounts.slice(1)) expect((await successor.readMonth(accountId, '2026-12'))?.totalMinor).toBe(totals.get(accountId));
  });

  /** The records a writer holds (as billing's state machine does), handed to the store as its source. */
  const writerState = () => {
    const months = new Map<string, ReturnType<typeof monthOf>>();
    const source: AccountStateSource = { account: () => undefined, month: (accountId) => months.get(accountId) };
    return {
      source,
      change: (record: ReturnType<typeof monthOf>) => {
        months.set(record.accountId, record);
        return { accounts: [], months: [record], source };
      },
    };
  };

  it('a writer writes complete pages from its source: nothing read back while it alone writes, each page once after another wrote', async () => {
    const options = { bucket: 'two-owners', shardOf: () => 7, pagesPerShard: 1, compactAfterChanges: 2 };
    const first = await KvAccountStateStore.open(connection as NatsConnection, options);
    const firstState = writerState();
    for (let position = 1; position <= 10; position++) await first.write(7, position, firstState.change(monthOf(`first-${position}`, position, position)));
    expect(first.pagesReadBack).toBe(0);
    expect(first.compactions).toBeGreaterThan(2);

    // A second owner (after a takeover) adds an account; the first, owner again later, must not drop it.
    const second = await KvAccountStateStore.open(connection as NatsConnection, options);
    await second.write(7, 11, writerState().change(monthOf('second-1', 11, 11)));
    expect(second.pagesReadBack).toBe(1);
    expect(await first.readMonth('second-1', '2026-12')).toEqual(monthOf('second-1', 11, 11));
    for (let position = 12; position <= 80; position++) await first.write(7, position, firstState.change(monthOf(`first-${position}`, position, position)));
    // Read back once (someone else had written), then again only where its source lacks a record
    // (second-1, which only the other owner had): a state machine that replayed the log has them all.
    expect(first.pagesReadBack).toBeGreaterThanOrEqual(1);
    // Far more revisions than the bucket keeps per page were written since: the record is in the complete entries.
    expect(await second.readMonth('second-1', '2026-12')).toEqual(monthOf('second-1', 11, 11));
    expect((await second.readMonth('first-3', '2026-12'))?.totalMinor).toBe(3);
    expect((await second.readMonth('first-80', '2026-12'))?.totalMinor).toBe(80);
  });

  it('writes complete pages from the changes as of the write and the source for the other accounts: an older source never wins, a newer one comes with the next write', async () => {
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'source-newer', shardOf: () => 8, pagesPerShard: 1, compactAfterChanges: 1 });
    const held = new Map([['c', monthOf('c', 20, 2)]]);
    const source: AccountStateSource = { account: () => undefined, month: (accountId) => held.get(accountId) };
    await store.write(8, 2, { accounts: [], months: [monthOf('c', 20, 2)], source }); // complete (the page's first)
    held.set('c', monthOf('c', 21, 3));
    await store.write(8, 3, { accounts: [], months: [monthOf('c', 21, 3)], source }); // changes only
    // Complete again (compactAfterChanges 1). The changes say position 5 for "a" and 3 for "b"; the
    // source already holds "a" at 9 (applied meanwhile) and "b" only at 1; "c" comes from the source.
    held.set('a', monthOf('a', 500, 9));
    held.set('b', monthOf('b', 10, 1));
    await store.write(8, 5, { accounts: [], months: [monthOf('a', 300, 5), monthOf('b', 30, 3)], source });
    expect((await store.readMonth('a', '2026-12'))?.totalMinor).toBe(300);
    expect((await store.readMonth('b', '2026-12'))?.totalMinor).toBe(30);
    expect((await store.readMonth('c', '2026-12'))?.totalMinor).toBe(21);
    // The next write carries what was applied after 5.
    held.set('b', monthOf('b', 30, 3));
    held.set('c', monthOf('c', 25, 7));
    await store.write(8, 9, { accounts: [], months: [monthOf('a', 500, 9), monthOf('c', 25, 7)], source });
    expect((await store.readMonth('a', '2026-12'))?.totalMinor).toBe(500);
    expect((await store.readMonth('b', '2026-12'))?.totalMinor).toBe(30);
    expect((await store.readMonth('c', '2026-12'))?.totalMinor).toBe(25);
  });

  it("gives a page that stopped changing (a month that is over) a complete latest entry: its reads are one get, not its history", async () => {
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'settling', shardOf: () => 9, pagesPerShard: 1, compactAfterChanges: 40, settleIdlePagesAfterWrites: 3 });
    const state = writerState();
    let position = 0;
    // November changes a few times (entries of changes only), then only December changes.
    for (let i = 0; i < 4; i++) await store.write(9, ++position, state.change({ ...monthOf(`nov-${i}`, 100 + i, position + 1), month: '2026-11', position: position }));
    const source: AccountStateSource = {
      account: () => undefined,
      month: (accountId, month) => (month === '2026-11' && accountId.startsWith('nov-') ? { ...monthOf(accountId, 100 + Number(accountId.slice(4)), 1), month } : undefined),
    };
    for (let i = 0; i < 5; i++) {
      position++;
      await store.write(9, position, { accounts: [], months: [monthOf(`dec-${i}`, i, position)], source });
    }
    const reads = store.historyReads;
    expect((await store.readMonth('nov-2', '2026-11'))?.totalMinor).toBe(102);
    expect((await store.listMonths('nov-3', { beforeMonth: '2026-12', limit: 3 })).map((m) => m.month)).toEqual(['2026-11']);
    expect(store.historyReads).toBe(reads);
    // December, changed at the last write, is read from its history.
    expect((await store.readMonth('dec-4', '2026-12'))?.totalMinor).toBe(4);
    expect(store.historyReads).toBe(reads + 1);
  });

  it('keeps the page count a bucket was laid out with, whatever a later process is configured with', async () => {
    const first = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'layout', shardOf: () => 0, pagesPerShard: 4 });
    await first.write(0, 1, { accounts: [], months: Array.from({ length: 100 }, (_, i) => monthOf(`acct-${i}`, i, 1)) });
    const later = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'layout', shardOf: () => 0, pagesPerShard: 64 });
    for (const i of [0, 42, 99]) expect((await later.readMonth(`acct-${i}`, '2026-12'))?.totalMinor).toBe(i);
    await later.write(0, 2, { accounts: [], months: [monthOf('acct-1', 1_000, 2)] });
    expect(Object.keys(await pageRevisions(later.bucketName(0)))).toHaveLength(4);
    expect(Object.keys(await pageRevisions(later.bucketName(0))).every((subject) => /\.page\.2026-12\.[0-3]$/.test(subject))).toBe(true);
  });

  it('copies the records of the one-entry-per-record layout into pages once, with its position', async () => {
    const previous = await kvm().create('per-record-5', { history: 1 });
    const account = { accountId: 'old/1', timeZone: 'Europe/Berlin', currency: 'EUR', thresholdVersion: 1, position: 5, updatedAtMs: 1 };
    await previous.put(`account.${kvKeyOfAccount('old/1')}`, new TextEncoder().encode(JSON.stringify(account)));
    for (const [month, total, position] of [['2026-09', 100, 3], ['2026-10', 300, 7], ['2026-10', 400, 9]] as const) {
      await previous.put(`month.${kvKeyOfAccount('old/1')}.${month}`, new TextEncoder().encode(JSON.stringify({ ...monthOf('old/1', total, position), month })));
    }
    await previous.put('position', new TextEncoder().encode('42'));
    await previous.put('write-check', new TextEncoder().encode('7'));

    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'migrated', previousLayoutBucket: 'per-record', shardOf: () => 5 });
    expect(await store.flushedPosition(5)).toBe(42);
    expect(await store.readAccount('old/1')).toEqual(account);
    expect((await store.listMonths('old/1', { limit: 10 })).map((m) => [m.month, m.totalMinor])).toEqual([['2026-10', 400], ['2026-09', 100]]);
    // Copied once: a later write goes on from there.
    await store.write(5, 43, { accounts: [], months: [{ ...monthOf('old/1', 500, 43), month: '2026-10' }] });
    expect((await store.readMonth('old/1', '2026-10'))?.totalMinor).toBe(500);
    expect((await store.readMonth('old/1', '2026-09'))?.totalMinor).toBe(100);
  });

  it('refuses to use a bucket of the one-entry-per-record layout as pages, and says what to do', async () => {
    await kvm().create('old-layout-0', { history: 1 });
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'old-layout', shardOf: () => 0 });
    await expect(store.flushedPosition(0)).rejects.toThrow(/bucket old-layout-0 is not a paged read model .* Set BILLING_STATE_KV_BUCKET to a prefix not in use/);
  });

  it('refuses a page larger than the broker takes in a message, naming the setting to change', async () => {
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'crowded', shardOf: () => 6, pagesPerShard: 1 });
    const months = Array.from({ length: 8_000 }, (_, i) => monthOf(`a-rather-long-account-identifier-${i}`, i, 1));
    await expect(store.write(6, 1, { accounts: [], months })).rejects.toThrow(/page.2026-12.0 of crowded-6 is \d+ bytes, over what the broker takes in a message .*Read model pages.*BILLING_STATE_PAGES/);
    expect(await store.flushedPosition(6)).toBe(0);
  });

  it('notices an entry the broker did not store, and then neither claims the write nor raises the position', async () => {
    // A bucket whose values may not exceed 2,000 bytes: the page with the long account is refused.
    await kvm().create('refusing-3', { history: 64, maxValueSize: 2_000 });
    const store = await KvAccountStateStore.open(connection as NatsConnection, { bucket: 'refusing', shardOf: () => 3, pagesPerShard: 1 });
    await store.write(3, 1, { accounts: [], months: [monthOf('fits-1', 100, 1)] });
    const months = [monthOf('fits-1', 200, 2), { ...monthOf(`too-long-${'x'.repeat(3_000)}`, 200, 2) }];
    await expect(store.write(3, 2, { accounts: [], months })).rejects.toThrow(/maximum|size|exceed/i);
    expect(store.fallbackWrites).toBe(1);
    expect(await store.flushedPosition(3)).toBe(1);
    expect((await store.readMonth('fits-1', '2026-12'))?.totalMinor).toBe(100);
  });
});
