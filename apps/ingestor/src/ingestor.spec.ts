import * as grpc from '@grpc/grpc-js';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  BadRequest,
  IngestServiceClient,
  RejectionCode,
  RetryInfo,
  Status,
  TollTransaction,
  TransactionStatus,
  type StreamTransactionsRequest,
  type StreamTransactionsResponse,
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

/**
 * What an integrator does with a plain grpc-js client: read the grpc-status-details-bin trailer (or a
 * stream's batch_error), decode google.rpc.Status and unpack google.rpc.BadRequest from its Any by type URL.
 */
function fieldViolationsOf(status: Status | undefined): Array<{ field: string; description: string }> {
  const badRequest = status?.details.find((any) => any.typeUrl === 'type.googleapis.com/google.rpc.BadRequest');
  if (!badRequest) return [];
  return BadRequest.decode(badRequest.value).fieldViolations.map(({ field, description }) => ({ field, description }));
}
function statusOfError(error: grpc.ServiceError): Status | undefined {
  const [trailer] = error.metadata.get('grpc-status-details-bin');
  return trailer instanceof Buffer ? Status.decode(trailer) : undefined;
}

/** One StreamTransactions call: acknowledgements by batch reference, and how the stream ended. */
function openStream(client: IngestServiceClient, token: string | undefined) {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  const call = client.streamTransactions(metadata, { deadline: Date.now() + 30_000 });
  const acks = new Map<string, StreamTransactionsResponse>();
  const waiters: Array<() => void> = [];
  call.on('data', (response: StreamTransactionsResponse) => {
    acks.set(response.batchRef, response);
    waiters.splice(0).forEach((wake) => wake());
  });
  const ended = new Promise<grpc.ServiceError | 'ok'>((resolve) => {
    call.on('error', (error: grpc.ServiceError) => resolve(error));
    call.on('end', () => resolve('ok'));
  });
  let finished = false;
  void ended.then(() => {
    finished = true;
    waiters.splice(0).forEach((wake) => wake());
  });
  return {
    send: (request: StreamTransactionsRequest) => call.write(request),
    end: () => call.end(),
    ended,
    get finished() {
      return finished;
    },
    /** The acknowledgement of a batch; fails if the stream ends first. */
    ack: async (batchRef: string): Promise<StreamTransactionsResponse> => {
      for (;;) {
        const ack = acks.get(batchRef);
        if (ack) return ack;
        if (finished) throw new Error(`the stream ended before batch ${batchRef.slice(0, 20)} was acknowledged: ${String(await ended)}`);
        await new Promise<void>((wake) => waiters.push(wake));
      }
    },
  };
}

const statusNames = (results: TransactionResult[]) => results.map((r) => TransactionStatus[r.status].replace('TRANSACTION_STATUS_', ''));

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
    ingestor = await startIngestor({
      natsUrl: nats.url,
      credentialsFile,
      env: { INGEST_MAX_AMOUNT_MINOR: '10000', INGEST_MAX_RECORDS_PER_BATCH: '50', INGEST_MAX_REQUEST_BYTES: String(64 * 1024) },
    });
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

  it('rejects an empty batch with INVALID_ARGUMENT naming the field, with a google.rpc.BadRequest in the status details', async () => {
    const empty = (await submit(client, northToken, []).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(empty).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'transactions: at least one record is required' });
    expect(statusOfError(empty)).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: 'transactions: at least one record is required' });
    expect(fieldViolationsOf(statusOfError(empty))).toEqual([{ field: 'transactions', description: 'at least one record is required' }]);

    const tooMany = (await submit(client, northToken, Array.from({ length: 51 }, () => aTransaction())).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(tooMany.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(fieldViolationsOf(statusOfError(tooMany))).toEqual([{ field: 'transactions', description: 'at most 50 records per batch, got 51' }]);
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

  it('answers a bad batch on its own and keeps the stream open: good, bad, good batches on one stream', async () => {
    const stream = openStream(client, northToken);
    const good1 = [aTransaction(), aTransaction(), aTransaction({ stationId: 'st-north-2' })];
    const badRecords = [aTransaction({ currency: 'EURO' }), aTransaction({ amountMinor: 10_001 }), aTransaction({ stationId: 'st-south-1' })];
    const good2 = [aTransaction(), aTransaction()];
    const longRef = 'r'.repeat(129);
    // Sent without waiting: a station pipelines its batches.
    stream.send({ batchRef: 'good-1', transactions: good1 });
    stream.send({ batchRef: 'too-many', transactions: Array.from({ length: 51 }, () => aTransaction()) });
    stream.send({ batchRef: 'bad-records', transactions: badRecords });
    stream.send({ batchRef: 'empty', transactions: [] });
    stream.send({ batchRef: longRef, transactions: [aTransaction()] });
    stream.send({ batchRef: 'good-2', transactions: good2 });

    expect(statusNames((await stream.ack('good-1')).results)).toEqual(['ACCEPTED', 'ACCEPTED', 'ACCEPTED']);
    expect(statusNames((await stream.ack('good-2')).results)).toEqual(['ACCEPTED', 'ACCEPTED']);

    // Batch-level problems: nothing in the batch looked at, the reason in batch_error (google.rpc.Status).
    const tooMany = await stream.ack('too-many');
    expect(tooMany.results).toEqual([]);
    expect(tooMany.batchError).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: 'transactions: at most 50 records per batch, got 51' });
    expect(fieldViolationsOf(tooMany.batchError)).toEqual([{ field: 'transactions', description: 'at most 50 records per batch, got 51' }]);
    expect(fieldViolationsOf((await stream.ack('empty')).batchError)).toEqual([{ field: 'transactions', description: 'at least one record is required' }]);
    const longRefAck = await stream.ack(longRef.slice(0, 128));
    expect(fieldViolationsOf(longRefAck.batchError)).toEqual([{ field: 'batch_ref', description: 'at most 128 characters, got 129' }]);

    // Record-level problems, including a station this credential may not submit for: one result each.
    const bad = await stream.ack('bad-records');
    expect(bad.batchError).toBeUndefined();
    expect(bad.results.map((r) => [TransactionStatus[r.status], RejectionCode[r.rejectionCode], r.field])).toEqual([
      ['TRANSACTION_STATUS_REJECTED', 'REJECTION_CODE_INVALID_FIELD', 'currency'],
      ['TRANSACTION_STATUS_REJECTED', 'REJECTION_CODE_INVALID_FIELD', 'amount_minor'],
      ['TRANSACTION_STATUS_REJECTED', 'REJECTION_CODE_PERMISSION_DENIED', 'station_id'],
    ]);
    expect(bad.results[2].reason).toContain('may not submit for station st-south-1');

    // Still open after all of that: one more batch, then a clean end.
    const good3 = [aTransaction()];
    stream.send({ batchRef: 'good-3', transactions: [...good3, good1[0]] });
    expect(statusNames((await stream.ack('good-3')).results)).toEqual(['ACCEPTED', 'DUPLICATE']);
    expect(stream.finished).toBe(false);
    stream.end();
    expect(await stream.ended).toBe('ok');

    const mine = new Set([...good1, ...good2, ...good3, ...badRecords].map((t) => t.transactionId));
    const stored = (await readTransactionStream(jsm)).map((record) => record.transaction).filter((t) => t && mine.has(t.transactionId));
    // Exactly the good records, once each (batches of one stream may be appended in any order).
    const byId = (a: TollTransaction | undefined, b: TollTransaction | undefined) => (a?.transactionId ?? '').localeCompare(b?.transactionId ?? '');
    expect(stored.sort(byId)).toEqual([...good1, ...good2, ...good3].sort(byId));
    const letters = (await readDeadLetters(jsm)).filter((l) => mine.has(TollTransaction.decode(l.original).transactionId));
    expect(letters.map((l) => l.reasonCode).sort()).toEqual(['INVALID_FIELD', 'INVALID_FIELD', 'PERMISSION_DENIED']);

    const body = await (await fetch(`http://127.0.0.1:${ingestor.httpPort}/metrics`)).text();
    expect(body).toMatch(/tollstream_ingest_batches_refused_total\{call="stream",reason="invalid_batch"[^}]*\} 3/);
  });

  it('ends the stream only when it is broken: no credential (UNAUTHENTICATED), a message over the size limit (RESOURCE_EXHAUSTED)', async () => {
    const anonymous = openStream(client, undefined);
    anonymous.send({ batchRef: 'b', transactions: [aTransaction()] });
    expect(await anonymous.ended).toMatchObject({ code: grpc.status.UNAUTHENTICATED });

    const stream = openStream(client, northToken);
    stream.send({ batchRef: 'before', transactions: [aTransaction()] });
    expect(statusNames((await stream.ack('before')).results)).toEqual(['ACCEPTED']);
    // Over INGEST_MAX_REQUEST_BYTES (64 KiB here): grpc-js refuses the message before the service sees it.
    stream.send({ batchRef: 'huge', transactions: [aTransaction({ accountId: 'a'.repeat(70_000) })] });
    expect(await stream.ended).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
  });
});

describe('ingestor while its broker is down (real nats-server killed and started again)', () => {
  let nats: NatsHandle;
  let ingestor: ServiceProcess;
  let client: IngestServiceClient;
  let removeDir: () => Promise<void>;

  beforeAll(async () => {
    nats = await startNats();
    const dir = await tempDir('ingestor-broker-down');
    removeDir = dir.remove;
    const credentialsFile = join(dir.path, 'stations.json');
    writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'north', token: northToken, stationIds: ['st-north-1'] }] }));
    ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile, env: { INGEST_APPEND_DEADLINE_MS: '2000' } });
    client = new IngestServiceClient(`127.0.0.1:${ingestor.grpcPort}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await ingestor?.stop();
    await nats?.stop();
    await removeDir?.();
  });

  it('answers UNAVAILABLE with a google.rpc.RetryInfo (stream: batch_error, the stream stays open; unary: the status details), and takes the batch once the broker is back', async () => {
    const retryDelayMsOf = (status: Status | undefined): number | undefined => {
      const any = status?.details.find((detail) => detail.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo');
      const delay = any && RetryInfo.decode(any.value).retryDelay;
      return delay && delay.seconds * 1000 + delay.nanos / 1e6;
    };
    // A record that must be dead-lettered: with the broker gone, the ingestor cannot, so it cannot answer for it.
    const invalid = aTransaction({ currency: 'EURO' });
    const stream = openStream(client, northToken);
    stream.send({ batchRef: 'warm-up', transactions: [aTransaction()] });
    expect(statusNames((await stream.ack('warm-up')).results)).toEqual(['ACCEPTED']);

    await nats.kill();
    stream.send({ batchRef: 'while-down', transactions: [invalid] });
    const unavailable = await stream.ack('while-down');
    expect(unavailable.results).toEqual([]);
    expect(unavailable.batchError).toMatchObject({ code: grpc.status.UNAVAILABLE, message: expect.stringContaining('send the same batch again') });
    expect(retryDelayMsOf(unavailable.batchError)).toBe(1_000);
    expect(stream.finished).toBe(false);

    const unary = (await submit(client, northToken, [invalid]).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(unary.code).toBe(grpc.status.UNAVAILABLE);
    expect(retryDelayMsOf(statusOfError(unary))).toBe(1_000);

    await nats.start();
    // The station follows the advice: the same batch again, on the same stream, until it has an answer per record.
    let answer: StreamTransactionsResponse | undefined;
    for (let attempt = 0; attempt < 20 && !answer?.results.length; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, retryDelayMsOf(answer?.batchError ?? unavailable.batchError)));
      stream.send({ batchRef: `again-${attempt}`, transactions: [invalid] });
      answer = await stream.ack(`again-${attempt}`);
    }
    expect(answer?.results.map((r) => [TransactionStatus[r.status], r.field])).toEqual([['TRANSACTION_STATUS_REJECTED', 'currency']]);
    stream.end();
    expect(await stream.ended).toBe('ok');
  }, 90_000);
});
