import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DeadLetter, Streams, Subjects, TollTransaction, VehicleClass } from '@tollstream/contracts';
import { readDeadLetters, startNats, waitFor, type NatsHandle } from '@tollstream/testing';
import { DeadLetterPublisher } from './dead-letters';
import { inspectStreams } from './inspect';
import { declareTopology, provisionTopology } from './topology';
import { PoisonMessageError, startTypedConsumer } from './typed-consumer';

describe('messaging against nats-server', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    js = jetstream(nc);
    await provisionTopology(jsm, declareTopology({ transactionPartitions: 4 }));
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('provisions the declared streams idempotently and brings changed ones to the declaration', async () => {
    const topology = declareTopology({ transactionPartitions: 4, duplicateWindowMs: 60_000 });
    await Promise.all([provisionTopology(jsm, topology), provisionTopology(jsm, topology)]);
    await provisionTopology(jsm, topology);
    const info = await jsm.streams.info(Streams.transactions);
    expect(info.config.subjects).toEqual([Subjects.transactionsAll]);
    expect(info.config.duplicate_window).toBe(60_000 * 1_000_000);

    await provisionTopology(jsm, declareTopology({ transactionPartitions: 4, duplicateWindowMs: 120_000 }));
    expect((await jsm.streams.info(Streams.transactions)).config.duplicate_window).toBe(120_000 * 1_000_000);
    expect((await jsm.streams.info(Streams.deadLetters)).config.subjects).toEqual([Subjects.deadLettersAll]);
  });

  it('keeps dead letters as long as TOLL_DLQ_RETENTION_MS says, independently of the account events', async () => {
    await provisionTopology(jsm, declareTopology({ transactionPartitions: 4, deadLetterRetentionMs: 3 * 24 * 3600_000 }));
    expect((await jsm.streams.info(Streams.deadLetters)).config.max_age).toBe(3 * 24 * 3600_000 * 1_000_000);
    expect((await jsm.streams.info(Streams.accounts)).config.max_age).toBe(30 * 24 * 3600_000 * 1_000_000);
  });

  it('rejects a topology without partitions', () => {
    expect(() => declareTopology({ transactionPartitions: 0 })).toThrow(/transactionPartitions/);
  });

  it('dead-letters with the reason and original bytes, once per identical letter', async () => {
    const counted: string[] = [];
    const publisher = new DeadLetterPublisher(js, 'spec', (reason) => counted.push(reason));
    const original = new Uint8Array([1, 2, 3]);
    const first = await publisher.publish({ reasonCode: 'BROKEN', reason: 'it is broken', original, stationId: 'st-1' });
    const again = await publisher.publish({ reasonCode: 'BROKEN', reason: 'it is broken', original, stationId: 'st-1' });
    expect(again.duplicate).toBe(true);
    expect(again.seq).toBe(first.seq);
    const stored = await jsm.streams.getMessage(Streams.deadLetters, { seq: first.seq });
    const letter = DeadLetter.decode(stored?.data ?? new Uint8Array());
    expect(stored?.subject).toBe('tolls.dlq.spec');
    expect(letter).toMatchObject({ source: 'spec', reasonCode: 'BROKEN', reason: 'it is broken', stationId: 'st-1' });
    expect([...letter.original]).toEqual([1, 2, 3]);
    expect(counted).toEqual(['BROKEN', 'BROKEN']);
  });

  it('consumes typed messages: handles good ones, dead-letters undecodable and poison ones, redelivers on failure', async () => {
    await jsm.streams.add({ name: 'SPEC_IN', subjects: ['spec.in'] });
    await jsm.consumers.add('SPEC_IN', { durable_name: 'reader', ack_policy: AckPolicy.Explicit, ack_wait: 5_000_000_000 });
    const record = (id: string): Uint8Array =>
      TollTransaction.encode({
        transactionId: id, stationId: 'st-1', laneId: 'L1', tagId: 'T', plate: '', accountId: '',
        vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, amountMinor: 1, currency: 'USD', occurredAt: new Date(0),
      }).finish();
    await js.publish('spec.in', record('good'));
    await js.publish('spec.in', new Uint8Array([0xff, 0xff, 0xff]), { msgID: 'in/undecodable' }); // not protobuf
    await js.publish('spec.in', record('poison'), { msgID: 'in/poison' });
    await js.publish('spec.in', record('flaky'));

    const handled: string[] = [];
    let flakyFailures = 0;
    const running = await startTypedConsumer({
      consumer: await js.consumers.get('SPEC_IN', 'reader'),
      codec: TollTransaction,
      deadLetters: new DeadLetterPublisher(js, 'spec-consumer'),
      handle: async (transaction) => {
        if (transaction.transactionId === 'poison') throw new PoisonMessageError('NEGATIVE_TOLL', 'cannot bill this');
        if (transaction.transactionId === 'flaky' && flakyFailures++ === 0) throw new Error('database hiccup');
        handled.push(transaction.transactionId);
      },
    });
    await waitFor(() => handled.includes('flaky'), { timeoutMs: 10_000, description: 'flaky message redelivered' });
    await running.stop();

    expect(handled).toEqual(['good', 'flaky']);
    const letters = await readDeadLetters(jsm, 'tolls.dlq.spec-consumer');
    // The original message id is kept: a re-drive republishes under an id derived from it.
    expect(letters.map((l) => [l.reasonCode, l.originalSubject, l.originalMsgId])).toEqual([
      ['UNDECODABLE', 'spec.in', 'in/undecodable'],
      ['NEGATIVE_TOLL', 'spec.in', 'in/poison'],
    ]);
    expect((await jsm.consumers.info('SPEC_IN', 'reader')).num_ack_pending).toBe(0);
  });

  it('inspects streams: sizes, per-subject counts, consumer lag, and says when a stream does not exist', async () => {
    await jsm.streams.add({ name: 'SPEC_LAG', subjects: ['spec.lag.*'] });
    await jsm.consumers.add('SPEC_LAG', { durable_name: 'slow', ack_policy: AckPolicy.Explicit });
    await js.publish('spec.lag.a', new Uint8Array([1]));
    await js.publish('spec.lag.a', new Uint8Array([2]));
    await js.publish('spec.lag.b', new Uint8Array([3]));
    const [lag, missing] = await inspectStreams(jsm, ['SPEC_LAG', 'NO_SUCH_STREAM']);
    expect(lag).toMatchObject({ stream: 'SPEC_LAG', exists: true, messages: 3, subjects: { 'spec.lag.a': 2, 'spec.lag.b': 1 } });
    expect(lag.consumers).toEqual([{ name: 'slow', durable: true, pending: 3, ackPending: 0, redelivered: 0 }]);
    expect(missing).toMatchObject({ stream: 'NO_SUCH_STREAM', exists: false });
  });
});
