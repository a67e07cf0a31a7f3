import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  DeadLetter,
  StationTrafficBatch,
  Streams,
  Subjects,
  TransactionStatus,
  type TollTransaction,
  type TransactionResult,
} from '@tollstream/contracts';
import { declareTopology, DeadLetterPublisher, provisionTopology } from '@tollstream/messaging';
import { createGrpcIngestTransport } from '@tollstream/station-sender';
import { aTollTransaction, readDeadLetters as readAllDeadLetters, readTransactionStream, startIngestor, startNats, tempDir, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDeadLetterFilter } from './filter';
import { RedriveLedger } from './ledger';
import { getDeadLetter, readDeadLetters } from './reader';
import { REDRIVE_OF_HEADER, RedriveError, redriveDeadLetters, type RedriveSummary } from './redrive';

// Real nats-server and the real ingestor (its own process, as in production): records rejected for
// every reason the ingestor has, the causes fixed (credentials, limits, clocks), re-driven.
const northToken = 'north-plaza-token-0123456789';
const southToken = 'south-plaza-token-0123456789';
const opsToken = 'operations-redrive-token-0123456789';
jest.setTimeout(120_000);

describe('re-drive of dead letters (real nats-server, real ingestor)', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let ingestor: ServiceProcess | undefined;
  let dir: { path: string; remove: () => Promise<void> };
  const run = `${process.pid}-${Date.now()}`;
  const tx = (name: string, overrides: Partial<TollTransaction> = {}): TollTransaction =>
    aTollTransaction({ transactionId: `tx-${run}-${name}`, stationId: 'st-a', occurredAt: new Date(Date.now() - 60_000), ...overrides });

  const startTheIngestor = async (fixed: boolean) => {
    const credentialsFile = join(dir.path, fixed ? 'stations-fixed.json' : 'stations.json');
    writeFileSync(
      credentialsFile,
      JSON.stringify({
        stations: [
          { name: 'north', token: northToken, stationIds: fixed ? ['st-a', 'st-b'] : ['st-a'] },
          { name: 'south', token: southToken, stationIds: ['st-c'] },
          { name: 'operations', token: opsToken, stationIds: ['st-a', 'st-b', 'st-c'] },
        ],
      }),
    );
    // Before the fix: a low amount limit, a short horizon and little clock skew allowed.
    const env = fixed
      ? { INGEST_MAX_AMOUNT_MINOR: '100000', INGEST_ACCEPTANCE_HORIZON_MS: '3h', INGEST_MAX_CLOCK_SKEW_MS: '5m' }
      : { INGEST_MAX_AMOUNT_MINOR: '10000', INGEST_ACCEPTANCE_HORIZON_MS: '1h', INGEST_MAX_CLOCK_SKEW_MS: '5s' };
    ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile, env });
  };
  const submit = async (token: string, transactions: TollTransaction[]): Promise<TransactionResult[]> => {
    const transport = createGrpcIngestTransport({ address: `127.0.0.1:${ingestor?.grpcPort}`, token });
    try {
      return (await transport.submitTransactions({ transactions }, new Date(Date.now() + 10_000))).results;
    } finally {
      transport.close();
    }
  };
  const redrive = (ledger: RedriveLedger, filterText: Parameters<typeof parseDeadLetterFilter>[0]): Promise<RedriveSummary> =>
    redriveDeadLetters({
      js,
      jsm,
      ledger,
      filter: parseDeadLetterFilter(filterText),
      by: 'spec-operator',
      stationApi: () => createGrpcIngestTransport({ address: `127.0.0.1:${ingestor?.grpcPort}`, token: opsToken }),
      batchSize: 2,
    });
  const storedIds = async (): Promise<string[]> => (await readTransactionStream(jsm)).map((record) => record.transaction?.transactionId ?? '').sort();

  beforeAll(async () => {
    nats = await startNats();
    dir = await tempDir('dlq-redrive-spec');
    nc = await connect({ servers: nats.url });
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
    await provisionTopology(jsm, declareTopology());
  });
  afterAll(async () => {
    await ingestor?.stop();
    await nc?.close();
    await nats?.stop();
    await dir?.remove();
  });

  it('re-drives ingestor dead letters through the station API: fixed ones accepted exactly once, a wrong one rejected again, an accepted one DUPLICATE; twice changes nothing', async () => {
    await startTheIngestor(false);
    const records = {
      tooExpensive: tx('amount', { amountMinor: 25_000 }),
      otherStation: tx('station-b', { stationId: 'st-b' }),
      tooOld: tx('old', { occurredAt: new Date(Date.now() - 2 * 3600_000) }),
      inFuture: tx('future', { occurredAt: new Date(Date.now() + 60_000) }),
      badCurrency: tx('currency', { currency: 'ZZZ' }),
      resentLater: tx('resent'),
    };
    const first = await submit(northToken, [records.tooExpensive, records.otherStation, records.tooOld, records.inFuture, records.badCurrency]);
    expect(first.map((result) => result.status)).toEqual(Array(5).fill(TransactionStatus.TRANSACTION_STATUS_REJECTED));
    // Sent with the wrong credential first (dead-lettered), then by its own station (accepted).
    expect((await submit(southToken, [records.resentLater]))[0].status).toBe(TransactionStatus.TRANSACTION_STATUS_REJECTED);
    expect((await submit(northToken, [records.resentLater]))[0].status).toBe(TransactionStatus.TRANSACTION_STATUS_ACCEPTED);

    const letters: Array<{ id: number; reasonCode: string }> = [];
    for await (const stored of readDeadLetters(js, jsm, parseDeadLetterFilter({ source: 'ingestor' }))) letters.push({ id: stored.id, reasonCode: stored.letter.reasonCode });
    expect(letters.map((letter) => letter.reasonCode).sort()).toEqual(['INVALID_FIELD', 'INVALID_FIELD', 'IN_FUTURE', 'PERMISSION_DENIED', 'PERMISSION_DENIED', 'TOO_OLD']);
    expect(await storedIds()).toEqual([records.resentLater.transactionId]);

    // Filters are checked against what is stored: by reason and station.
    const denied: number[] = [];
    for await (const stored of readDeadLetters(js, jsm, parseDeadLetterFilter({ reason: 'permission_denied', station: 'st-b' }))) denied.push(stored.id);
    expect(denied).toHaveLength(1);

    // The causes are fixed: credentials, the amount limit, the horizon, the clock skew allowed.
    await ingestor?.stop();
    await startTheIngestor(true);
    const ledger = await RedriveLedger.open(js);

    // A credential the ingestor does not know stops the run at once, with the reason; nothing is marked.
    const refused = redriveDeadLetters({
      js,
      jsm,
      ledger,
      filter: parseDeadLetterFilter({ source: 'ingestor' }),
      by: 'spec-operator',
      stationApi: () => createGrpcIngestTransport({ address: `127.0.0.1:${ingestor?.grpcPort}`, token: 'not-a-known-token-0123456789' }),
    });
    await expect(refused).rejects.toThrow(RedriveError);
    await expect(refused).rejects.toThrow(/the station API refused the re-drive: .*credential/);
    for (const letter of letters) expect(await ledger.markOf(letter.id)).toBeUndefined();

    // A subset first (as a run interrupted half-way would have done), then everything.
    const subset = await redrive(ledger, { reason: 'TOO_OLD,IN_FUTURE' });
    expect(subset.counts).toMatchObject({ accepted: 2, duplicate: 0, 'rejected-again': 0 });
    const all = await redrive(ledger, { source: 'ingestor' });
    expect(all.counts).toEqual({ accepted: 2, duplicate: 1, 'rejected-again': 1, republished: 0, failed: 0, 'not-redrivable': 0, 'already-redriven': 2 });
    const rejectedAgain = all.items.find((item) => item.outcome === 'rejected-again');
    expect(rejectedAgain?.detail).toMatch(/^INVALID_FIELD: currency: "ZZZ" is not an accepted ISO 4217 code/);

    const expected = [records.tooExpensive, records.otherStation, records.tooOld, records.inFuture, records.resentLater].map((record) => record.transactionId).sort();
    expect(await storedIds()).toEqual(expected);

    // Run again: nothing changes (every dead letter is marked re-driven; nothing new in the stream).
    const again = await redrive(ledger, { source: 'ingestor' });
    expect(again.counts).toMatchObject({ accepted: 0, duplicate: 0, 'rejected-again': 0, 'already-redriven': 6 });
    // Marks lost (a run killed between the ingestor's answer and the mark): the station API answers DUPLICATE.
    const forgetful = await RedriveLedger.open(js, { bucket: 'dlq-redrives-lost' });
    const replay = await redrive(forgetful, { source: 'ingestor' });
    expect(replay.counts).toMatchObject({ accepted: 0, duplicate: 5, 'rejected-again': 1 });
    expect(await storedIds()).toEqual(expected);

    // Nothing deleted: the dead letters are all there, marked, with who and when, and the runs recorded.
    const dlq = await readAllDeadLetters(jsm, Subjects.deadLetter('ingestor'));
    expect(dlq).toHaveLength(6); // the ZZZ record rejected again is the same dead letter (deduplicated)
    for (const letter of letters) {
      const mark = await ledger.markOf(letter.id);
      expect(mark).toMatchObject({ by: 'spec-operator', route: 'station-api' });
      expect(['accepted', 'duplicate', 'rejected-again']).toContain(mark?.outcome);
    }
    expect((await ledger.runs()).map((record) => [record.selected, record.incomplete])).toEqual([
      [6, true],
      [2, false],
      [6, false],
      [6, false],
    ]);
    expect(await ledger.tally()).toEqual({ runs: 4, redriven: 6, byOutcome: { accepted: 4, duplicate: 1, 'rejected-again': 1 } });
  });

  it('republishes a whole stream message of another source to its subject once, and refuses what cannot be republished', async () => {
    const traffic = StationTrafficBatch.encode(StationTrafficBatch.fromPartial({ batchId: 'traffic-3-42', sourcePartition: 3, watermark: new Date('2026-12-07T09:00:00Z') })).finish();
    const trafficLetters = new DeadLetterPublisher(js, 'traffic-anomaly');
    await trafficLetters.publish({ reasonCode: 'UNDECODABLE', reason: 'spec', original: traffic, originalSubject: Subjects.stationTrafficPartition(3), originalMsgId: 'traffic/3/42' });
    const loaderLetters = new DeadLetterPublisher(js, 'warehouse-loader');
    await loaderLetters.publish({ reasonCode: 'UNDECODABLE', reason: 'spec', original: new Uint8Array([1, 2]), originalSubject: Subjects.transactionPartition(0), originalMsgId: 'batch-1' });
    const billingLetters = new DeadLetterPublisher(js, 'billing-threshold');
    await billingLetters.publish({ reasonCode: 'CURRENCY_MISMATCH', reason: 'spec', original: new Uint8Array([3]), originalSubject: Subjects.customerSpendShard(1) });

    const ledger = await RedriveLedger.open(js, { bucket: 'dlq-redrives-other' });
    const filter = { source: 'traffic-anomaly,warehouse-loader,billing-threshold' };
    const dry = await redriveDeadLetters({ js, jsm, ledger, filter: parseDeadLetterFilter(filter), by: 'spec', dryRun: true });
    expect(dry.items.map((item) => item.action)).toEqual(['republish', 'not-redrivable', 'not-redrivable']);
    expect(await ledger.runs()).toEqual([]);
    const aggBefore = (await jsm.streams.info(Streams.aggregates)).state.messages;

    const first = await redriveDeadLetters({ js, jsm, ledger, filter: parseDeadLetterFilter(filter), by: 'spec' });
    expect(first.counts).toMatchObject({ republished: 1, 'not-redrivable': 2 });
    expect(first.items.find((item) => item.source === 'warehouse-loader')?.detail).toMatch(/immutable/);
    expect(first.items.find((item) => item.source === 'billing-threshold')?.detail).toMatch(/one record of a stream message/);
    const info = await jsm.streams.info(Streams.aggregates);
    expect(info.state.messages).toBe(aggBefore + 1);
    const republished = await jsm.streams.getMessage(Streams.aggregates, { seq: info.state.last_seq });
    expect(republished?.subject).toBe('tolls.agg.traffic.3');
    expect(Buffer.from(republished?.data ?? new Uint8Array()).equals(Buffer.from(traffic))).toBe(true);
    expect(republished?.header.get('Nats-Msg-Id')).toBe('redrive/traffic/3/42');
    const letterId = Number(republished?.header.get(REDRIVE_OF_HEADER));
    expect((await getDeadLetter(jsm, letterId)).letter).toMatchObject<Partial<DeadLetter>>({ source: 'traffic-anomaly', originalMsgId: 'traffic/3/42' });

    // Again: already re-driven. Marks lost: JetStream deduplicates by the id derived from the original's.
    expect((await redriveDeadLetters({ js, jsm, ledger, filter: parseDeadLetterFilter(filter), by: 'spec' })).counts).toMatchObject({ republished: 0, 'already-redriven': 1 });
    const lost = await RedriveLedger.open(js, { bucket: 'dlq-redrives-other-lost' });
    const replay = await redriveDeadLetters({ js, jsm, ledger: lost, filter: parseDeadLetterFilter(filter), by: 'spec' });
    expect(replay.items.find((item) => item.outcome === 'republished')?.detail).toMatch(/deduplicated/);
    expect((await jsm.streams.info(Streams.aggregates)).state.messages).toBe(aggBefore + 1);
  });
});
