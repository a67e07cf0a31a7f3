import * as grpc from '@grpc/grpc-js';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  IngestServiceClient,
  RejectionCode,
  TollTransaction,
  TransactionStatus,
  type SubmitTransactionsResponse,
  type TransactionResult,
} from '@tollstream/contracts';
import {
  aTollTransaction,
  readDeadLetters,
  readTransactionStream,
  startIngestor,
  startNats,
  tempDir,
  type NatsHandle,
  type ServiceProcess,
} from '@tollstream/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const northToken = 'north-plaza-token-0123456789';
const southToken = 'south-plaza-token-0123456789';

let sequence = 0;
const aTransaction = (overrides: Partial<TollTransaction> = {}): TollTransaction =>
  aTollTransaction({
    transactionId: `tx-${process.pid}-${++sequence}`,
    stationId: 'st-north-1',
    occurredAt: new Date(Date.now() - 60_000),
    ...overrides,
  });

function submit(client: IngestServiceClient, token: string | undefined, transactions: TollTransaction[]): Promise<TransactionResult[]> {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) =>
    client.submitTransactions({ transactions }, metadata, { deadline: Date.now() + 10_000 }, (error: grpc.ServiceError | null, response: SubmitTransactionsResponse) =>
      error ? reject(error) : resolve(response.results),
    ),
  );
}

describe('ingestor service (real nats-server, ingestor as a separate process)', () => {
  let nats: NatsHandle;
  let ingestor: ServiceProcess;
  let client: IngestServiceClient;
  let jsm: JetStreamManager;
  let credentialsFile: string;
  let removeDir: () => Promise<void>;
  const closeLater: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    nats = await startNats();
    const dir = await tempDir('ingestor-spec');
    removeDir = dir.remove;
    credentialsFile = join(dir.path, 'stations.json');
    writeFileSync(
      credentialsFile,
      JSON.stringify({
        stations: [
          { name: 'north', token: northToken, stationIds: ['st-north-1', 'st-north-2'] },
          { name: 'south', token: southToken, stationIds: ['st-south-1'] },
        ],
      }),
    );
    ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile, env: { INGEST_MAX_AMOUNT_MINOR: '10000' } });
    client = new IngestServiceClient(`127.0.0.1:${ingestor.grpcPort}`, grpc.credentials.createInsecure());
    const nc = await connect({ servers: nats.url });
    closeLater.push(() => nc.close());
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    client?.close();
    for (const close of closeLater) await close();
    await ingestor?.stop();
    await nats?.stop();
    await removeDir?.();
  });

  it('answers each record of a mixed batch, stores exactly the accepted ones and dead-letters the rejected ones', async () => {
    const good = [aTransaction(), aTransaction({ stationId: 'st-north-2', tagId: '', accountId: '' })];
    const tooExpensive = aTransaction({ amountMinor: 10_001 });
    const badCurrency = aTransaction({ currency: 'EURO' });
    const otherStation = aTransaction({ stationId: 'st-south-1' });
    const results = await submit(client, northToken, [good[0], tooExpensive, good[1], badCurrency, good[0], otherStation]);

    expect(results.map((r) => TransactionStatus[r.status].replace('TRANSACTION_STATUS_', ''))).toEqual([
      'ACCEPTED', 'REJECTED', 'ACCEPTED', 'REJECTED', 'DUPLICATE', 'REJECTED',
    ]);
    expect(results[1]).toMatchObject({ rejectionCode: RejectionCode.REJECTION_CODE_INVALID_FIELD, field: 'amount_minor' });
    expect(results[3]).toMatchObject({ rejectionCode: RejectionCode.REJECTION_CODE_INVALID_FIELD, field: 'currency' });
    expect(results[5]).toMatchObject({ rejectionCode: RejectionCode.REJECTION_CODE_PERMISSION_DENIED, field: 'station_id' });

    // A station retrying the whole batch later is told "duplicate" and nothing is stored twice.
    const retry = await submit(client, northToken, good);
    expect(retry.map((r) => r.status)).toEqual([TransactionStatus.TRANSACTION_STATUS_DUPLICATE, TransactionStatus.TRANSACTION_STATUS_DUPLICATE]);

    const stored = (await readTransactionStream(jsm)).map((record) => record.transaction);
    expect(stored).toEqual(good);

    const letters = await readDeadLetters(jsm);
    expect(letters.map((l) => [l.source, l.reasonCode, TollTransaction.decode(l.original).transactionId])).toEqual([
      ['ingestor', 'INVALID_FIELD', tooExpensive.transactionId],
      ['ingestor', 'INVALID_FIELD', badCurrency.transactionId],
      ['ingestor', 'PERMISSION_DENIED', otherStation.transactionId],
    ]);
    expect(letters[0].reason).toContain('amount_minor');
  });

  it('refuses calls without a valid station credential', async () => {
    await expect(submit(client, undefined, [aTransaction()])).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    await expect(submit(client, 'not-a-real-token-at-all', [aTransaction()])).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
  });

  it('rejects an empty batch with INVALID_ARGUMENT naming the field', async () => {
    await expect(submit(client, northToken, [])).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('transactions'),
    });
  });

  it('acknowledges each batch of a station stream with its batch reference', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${southToken}`);
    const call = client.streamTransactions(metadata);
    const acks: Array<{ batchRef: string; statuses: TransactionStatus[] }> = [];
    const finished = new Promise<void>((resolve, reject) => {
      call.on('data', (response: { batchRef: string; results: TransactionResult[] }) =>
        acks.push({ batchRef: response.batchRef, statuses: response.results.map((r) => r.status) }),
      );
      call.on('end', resolve);
      call.on('error', reject);
    });
    const first = aTransaction({ stationId: 'st-south-1' });
    call.write({ batchRef: 'b-1', transactions: [first, aTransaction({ stationId: 'st-south-1' })] });
    call.write({ batchRef: 'b-2', transactions: [first] });
    call.end();
    await finished;
    expect(acks.sort((a, b) => a.batchRef.localeCompare(b.batchRef))).toEqual([
      { batchRef: 'b-1', statuses: [TransactionStatus.TRANSACTION_STATUS_ACCEPTED, TransactionStatus.TRANSACTION_STATUS_ACCEPTED] },
      { batchRef: 'b-2', statuses: [TransactionStatus.TRANSACTION_STATUS_DUPLICATE] },
    ]);
  });

  it('refuses to start with invalid configuration, naming each bad variable', async () => {
    const failure = startIngestor({
      natsUrl: nats.url,
      credentialsFile,
      env: { INGEST_MAX_AMOUNT_MINOR: '-5', INGEST_MAX_CLOCK_SKEW_MS: 'soon' },
    });
    await expect(failure).rejects.toThrow(/INGEST_MAX_AMOUNT_MINOR.*INGEST_MAX_CLOCK_SKEW_MS|INGEST_MAX_CLOCK_SKEW_MS.*INGEST_MAX_AMOUNT_MINOR/s);
  });

  it('exposes Prometheus metrics with outcomes and append latency', async () => {
    const body = await (await fetch(`http://127.0.0.1:${ingestor.httpPort}/metrics`)).text();
    expect(body).toMatch(/tollstream_ingest_records_total\{outcome="accepted",reason=""[^}]*\} [1-9]/);
    expect(body).toMatch(/tollstream_ingest_records_total\{outcome="rejected",reason="PERMISSION_DENIED"[^}]*\} 1/);
    expect(body).toContain('tollstream_ingest_append_duration_seconds_bucket');
    const ready = await fetch(`http://127.0.0.1:${ingestor.httpPort}/readyz`);
    expect(ready.status).toBe(200);
  });
});
