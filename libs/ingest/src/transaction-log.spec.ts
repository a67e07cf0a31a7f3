import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Streams, Subjects, type IngestedTransaction } from '@tollstream/contracts';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { aTollTransaction as aTransaction, readTransactionStream, startNats, type NatsHandle } from '@tollstream/testing';
import { TransactionLog, type TransactionLogOptions } from './transaction-log';

const options: TransactionLogOptions = {
  partitions: 2,
  acceptanceHorizonMs: 3600_000,
  maxClockSkewMs: 60_000,
  maxRecordsPerAppend: 50,
  maxBytesPerAppend: 512 * 1024,
  appendDeadlineMs: 5_000,
};

const record = (id: string, stationId = 'st-001'): IngestedTransaction => ({
  transaction: aTransaction({ transactionId: id, stationId, occurredAt: new Date() }),
  ingestedAt: new Date(),
  partition: 0,
});

/** Every transaction id stored in partition 0, in stream order. */
const storedIds = async (jsm: JetStreamManager): Promise<string[]> =>
  (await readTransactionStream(jsm, Subjects.transactionPartition(0))).map((stored) => stored.transaction?.transactionId ?? '');

describe('TransactionLog against nats-server', () => {
  let nats: NatsHandle;
  let connections: NatsConnection[] = [];
  let jsm: JetStreamManager;

  const openLog = async (overrides: Partial<TransactionLogOptions> = {}): Promise<TransactionLog> => {
    const nc = await connect({ servers: nats.url });
    connections.push(nc);
    const log = new TransactionLog(jetstream(nc), await jetstreamManager(nc), { ...options, ...overrides });
    await log.start();
    return log;
  };

  beforeEach(async () => {
    nats = await startNats();
    const nc = await connect({ servers: nats.url });
    connections = [nc];
    jsm = await jetstreamManager(nc);
    await provisionTopology(jsm, declareTopology({ transactionPartitions: 2 }));
  });

  afterEach(async () => {
    await Promise.all(connections.map((nc) => nc.close()));
    await nats.stop();
  });

  it('stores each transaction once, reporting repeats within and across appends as duplicates', async () => {
    const log = await openLog();
    expect(await log.append(0, [record('a'), record('b'), record('a')])).toEqual(['accepted', 'accepted', 'duplicate']);
    expect(await log.append(0, [record('b'), record('c')])).toEqual(['duplicate', 'accepted']);
    // Same transaction id from another station is another transaction.
    expect(await log.append(0, [record('a', 'st-002')])).toEqual(['accepted']);
    expect(await storedIds(jsm)).toEqual(['a', 'b', 'c', 'a']);
    await log.stop();
  });

  it('groups concurrent appends of a partition into few stream messages', async () => {
    const log = await openLog();
    const outcomes = await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(0, [record(`t${i}`)])));
    expect(outcomes.flat().every((outcome) => outcome === 'accepted')).toBe(true);
    const info = await jsm.streams.info(Streams.transactions);
    expect(info.state.messages).toBeLessThan(50);
    expect((await storedIds(jsm)).length).toBe(200);
    await log.stop();
  });

  it('keeps two ingestor replicas racing on the same records from storing any twice', async () => {
    const [first, second] = [await openLog(), await openLog()];
    const ids = Array.from({ length: 300 }, (_, i) => `race-${i}`);
    const outcomes = await Promise.all([
      ...ids.map((id) => first.append(0, [record(id)])),
      ...ids.map((id) => second.append(0, [record(id)])),
    ]);
    const flat = outcomes.flat();
    expect(flat.filter((o) => o === 'accepted').length).toBe(300);
    expect(flat.filter((o) => o === 'duplicate').length).toBe(300);
    const stored = await storedIds(jsm);
    expect(stored.length).toBe(300);
    expect(new Set(stored).size).toBe(300);
    await Promise.all([first.stop(), second.stop()]);
  });

  it('remembers what is already in the stream after a restart', async () => {
    const before = await openLog();
    await before.append(0, [record('x'), record('y')]);
    await before.stop();
    const after = await openLog();
    expect(after.duplicateIndexSize).toBe(2);
    expect(await after.append(0, [record('x'), record('z')])).toEqual(['duplicate', 'accepted']);
    await after.stop();
  });

  it('stays exact when different transactions share a fingerprint (verified against the stored batch)', async () => {
    const everythingCollides = () => [3, 3] as [number, number];
    const log = await openLog({ fingerprint: everythingCollides });
    expect(await log.append(0, [record('p'), record('q')])).toEqual(['accepted', 'accepted']);
    expect(await log.append(0, [record('r'), record('p')])).toEqual(['accepted', 'duplicate']);
    expect(await log.append(0, [record('q'), record('r'), record('s')])).toEqual(['duplicate', 'duplicate', 'accepted']);
    await log.stop();
    // A restarted replica rebuilding its index from the stream is just as exact.
    const restarted = await openLog({ fingerprint: everythingCollides });
    expect(await restarted.append(0, [record('s'), record('t'), record('p')])).toEqual(['duplicate', 'accepted', 'duplicate']);
    expect(await storedIds(jsm)).toEqual(['p', 'q', 'r', 's', 't']);
    await restarted.stop();
  });

  it('keeps working, and keeps deduplicating, across a nats-server restart', async () => {
    const log = await openLog({ appendDeadlineMs: 20_000 });
    expect(await log.append(0, [record('before-1'), record('before-2')])).toEqual(['accepted', 'accepted']);
    await nats.restart();
    expect(await log.append(0, [record('before-2'), record('after-1')])).toEqual(['duplicate', 'accepted']);
    expect(await log.append(0, [record('after-1'), record('after-2')])).toEqual(['duplicate', 'accepted']);
    expect(await storedIds(jsm)).toEqual(['before-1', 'before-2', 'after-1', 'after-2']);
    await log.stop();
  }, 60_000);
});
