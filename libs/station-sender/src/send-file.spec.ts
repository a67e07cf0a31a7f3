import { status } from '@grpc/grpc-js';
import {
  RejectionCode,
  TransactionStatus,
  type SubmitTransactionsRequest,
  type SubmitTransactionsResponse,
} from '@tollstream/contracts';
import { retryLaterError } from '@tollstream/service-kit';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpoint } from './checkpoint';
import { CheckpointError, SendError } from './errors';
import type { IngestTransport } from './ingest-transport';
import { sendFile, type SendOptions, type SendProgress } from './send-file';
import { FakeIngest, grpcError, makeTempDir, recordJson, writeLines } from './test-support';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
afterEach(() => cleanup());

const fastRetry = { initialDelayMs: 1, maxDelayMs: 5, maxAttempts: 4 };

async function inputWith(count: number, name = 'tx.ndjson'): Promise<string> {
  const path = join(dir, name);
  await writeLines(
    path,
    Array.from({ length: count }, (_, index) => recordJson(index + 1)),
  );
  return path;
}

const options = (inputPath: string, transport: IngestTransport, extra: Partial<SendOptions> = {}): SendOptions => ({
  inputPath,
  transport,
  batchSize: 10,
  inFlight: 3,
  retry: fastRetry,
  random: () => 0.5,
  ...extra,
});

async function expectSendError(promise: Promise<unknown>): Promise<SendError> {
  const error = await promise.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(SendError);
  return error as SendError;
}

describe('sendFile', () => {
  it('sends every record in batches, keeps the in-flight limit and checkpoints the whole file', async () => {
    const input = await inputWith(95);
    const ingest = new FakeIngest();
    const transport = ingest.transport((call) => (call % 3) * 5);
    const summary = await sendFile(options(input, transport));
    // calls are recorded as they are answered, which with varying delays is not the order of dispatch
    expect(ingest.calls.map((call) => call.length).sort((a, b) => a - b)).toEqual([5, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
    expect(transport.maxConcurrent).toBeLessThanOrEqual(3);
    expect(transport.maxConcurrent).toBeGreaterThan(1);
    expect(summary).toMatchObject({
      linesRead: 95,
      recordsRead: 95,
      sent: 95,
      accepted: 95,
      duplicate: 0,
      rejected: 0,
      unparseable: 0,
      linesAcknowledged: 95,
      resumedAfterLine: 0,
      complete: true,
      interrupted: false,
      checkpointPath: `${input}.checkpoint.json`,
    });
    expect(await loadCheckpoint(summary.checkpointPath)).toMatchObject({
      linesAcknowledged: 95,
      complete: true,
      bytesAcknowledged: (await readFile(input)).length,
    });
  });

  it('advances the checkpoint only over contiguous batches when they complete out of order', async () => {
    const input = await inputWith(6);
    const ingest = new FakeIngest();
    const held: { request: SubmitTransactionsRequest; release: (response: SubmitTransactionsResponse) => void }[] = [];
    const transport: IngestTransport = {
      submitTransactions: (request) => new Promise((release) => held.push({ request, release })),
      close: () => undefined,
    };
    const progress: SendProgress[] = [];
    const running = sendFile(options(input, transport, { batchSize: 2, onProgress: (p) => progress.push(structuredClone(p)) }));
    while (held.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    const answer = (index: number) => {
      const call = held[index];
      if (!call) throw new Error(`no call ${index}`);
      call.release({ results: call.request.transactions.map((transaction) => ingest.resultFor(transaction)) });
    };
    answer(2);
    answer(1);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(progress.at(-1)?.counts.accepted).toBe(4);
    expect(progress.at(-1)?.linesAcknowledged).toBe(0);
    expect(await loadCheckpoint(`${input}.checkpoint.json`)).toBeUndefined();
    answer(0);
    const summary = await running;
    expect(summary.linesAcknowledged).toBe(6);
    expect(progress.map((p) => p.linesAcknowledged).filter((lines) => lines > 0)[0]).toBe(6);
  });

  it('retries a call that failed with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED', async () => {
    const input = await inputWith(20);
    const ingest = new FakeIngest();
    const failures = [status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED];
    ingest.script = (call) => {
      const code = failures[call];
      if (code !== undefined) throw grpcError(code, 'ingestor restarting');
    };
    const notices: string[] = [];
    const summary = await sendFile(
      options(input, ingest.transport(), {
        inFlight: 1,
        retry: { ...fastRetry, maxAttempts: 5 },
        onRetry: (notice) => notices.push(`${notice.firstLine}-${notice.lastLine} #${notice.attempt}: ${notice.reason}`),
      }),
    );
    expect(summary).toMatchObject({ accepted: 20, duplicate: 0, retriedCalls: 3, complete: true });
    expect(notices).toEqual([
      '1-10 #2: UNAVAILABLE: ingestor restarting',
      '1-10 #3: DEADLINE_EXCEEDED: ingestor restarting',
      '1-10 #4: RESOURCE_EXHAUSTED: ingestor restarting',
    ]);
  });

  it('waits the delay the ingestor asks for in google.rpc.RetryInfo, and still gives up after maxAttempts', async () => {
    const input = await inputWith(10);
    const ingest = new FakeIngest();
    ingest.script = () => {
      throw retryLaterError(status.UNAVAILABLE, 'send the same batch again', 60);
    };
    const notices: Array<{ delayMs: number; askedDelayMs?: number }> = [];
    const sentAt: number[] = [];
    const transport = ingest.transport();
    const timed: IngestTransport = {
      submitTransactions: (request, deadline) => {
        sentAt.push(Date.now());
        return transport.submitTransactions(request, deadline);
      },
      close: () => undefined,
    };
    const error = await expectSendError(
      sendFile(options(input, timed, { retry: { ...fastRetry, maxAttempts: 3 }, onRetry: ({ delayMs, askedDelayMs }) => notices.push({ delayMs, askedDelayMs }) })),
    );
    // 60 ms asked, jitter 0.5 of 10 % on top: 63 ms, where the backoff alone would have waited under 5 ms.
    expect(notices).toEqual([
      { delayMs: 63, askedDelayMs: 60 },
      { delayMs: 63, askedDelayMs: 60 },
    ]);
    expect(sentAt).toHaveLength(3);
    expect(sentAt[1] - sentAt[0]).toBeGreaterThanOrEqual(60);
    expect(sentAt[2] - sentAt[1]).toBeGreaterThanOrEqual(60);
    expect(error.message).toMatch(/gave up on lines 1-10 after 3 attempts; last error UNAVAILABLE: send the same batch again/);
    expect(error.summary).toMatchObject({ retriedCalls: 2, accepted: 0, linesAcknowledged: 0 });
  });

  it('uses its own backoff for records rejected as UNAVAILABLE (a result carries no RetryInfo)', async () => {
    const input = await inputWith(3);
    const ingest = new FakeIngest();
    let unavailableLeft = 1;
    ingest.rejectWhen = () =>
      unavailableLeft-- > 0 ? { rejectionCode: RejectionCode.REJECTION_CODE_UNAVAILABLE, field: '', reason: 'not confirmed in time' } : undefined;
    const notices: Array<{ delayMs: number; askedDelayMs?: number }> = [];
    const summary = await sendFile(options(input, ingest.transport(), { onRetry: ({ delayMs, askedDelayMs }) => notices.push({ delayMs, askedDelayMs }) }));
    expect(notices).toEqual([{ delayMs: 1 }]); // fastRetry: step 1 ms
    expect(summary).toMatchObject({ accepted: 3, resentRecords: 1, complete: true });
  });

  it('re-sends only the records rejected with UNAVAILABLE', async () => {
    const input = await inputWith(10);
    const ingest = new FakeIngest();
    let unavailableLeft = 2;
    ingest.rejectWhen = (transaction) =>
      ['tx-000003', 'tx-000007'].includes(transaction.transactionId) && unavailableLeft-- > 0
        ? { rejectionCode: RejectionCode.REJECTION_CODE_UNAVAILABLE, field: '', reason: 'stream not writable' }
        : undefined;
    const summary = await sendFile(options(input, ingest.transport()));
    expect(ingest.calls.map((call) => call.map((transaction) => transaction.transactionId))).toEqual([
      Array.from({ length: 10 }, (_, index) => `tx-${String(index + 1).padStart(6, '0')}`),
      ['tx-000003', 'tx-000007'],
    ]);
    expect(summary).toMatchObject({ sent: 10, accepted: 10, rejected: 0, resentRecords: 2, complete: true });
  });

  it('gives up after the maximum attempts with a clear error and keeps the acknowledged prefix', async () => {
    const input = await inputWith(30);
    const ingest = new FakeIngest();
    ingest.script = (call) => {
      if (call >= 1) throw grpcError(status.UNAVAILABLE, 'connection refused');
    };
    const error = await expectSendError(sendFile(options(input, ingest.transport(), { inFlight: 1 })));
    expect(error.message).toMatch(/gave up on lines 11-20 after 4 attempts; last error UNAVAILABLE: connection refused/);
    expect(error.grpcCode).toBe('UNAVAILABLE');
    expect(ingest.calls).toHaveLength(1 + 4);
    expect(error.summary).toMatchObject({ accepted: 10, linesAcknowledged: 10, complete: false, interrupted: false });
    expect(await loadCheckpoint(`${input}.checkpoint.json`)).toMatchObject({ linesAcknowledged: 10, complete: false });
  });

  it('gives up when records stay rejected as UNAVAILABLE', async () => {
    const input = await inputWith(5);
    const ingest = new FakeIngest();
    ingest.rejectWhen = (transaction) =>
      transaction.transactionId === 'tx-000002'
        ? { rejectionCode: RejectionCode.REJECTION_CODE_UNAVAILABLE, field: '', reason: 'partition leader lost' }
        : undefined;
    const error = await expectSendError(sendFile(options(input, ingest.transport())));
    expect(error.message).toMatch(
      /gave up after 4 attempts: 1 record\(s\) of lines 1-5 were still rejected as UNAVAILABLE \(first at line 2: partition leader lost\)/,
    );
    expect(error.summary?.linesAcknowledged).toBe(0);
  });

  it.each([
    [status.UNAUTHENTICATED, /refused the station credentials \(UNAUTHENTICATED: bad token\)/],
    [status.INVALID_ARGUMENT, /refused the request for lines 1-10 as invalid \(INVALID_ARGUMENT: bad token\)/],
    [status.PERMISSION_DENIED, /denied the request for lines 1-10 \(PERMISSION_DENIED: bad token\)/],
    [status.INTERNAL, /sending lines 1-10 failed \(INTERNAL: bad token\)/],
  ])('stops at once on the fatal status %s', async (code, message) => {
    const input = await inputWith(30);
    const ingest = new FakeIngest();
    ingest.script = () => {
      throw grpcError(code, 'bad token');
    };
    const error = await expectSendError(sendFile(options(input, ingest.transport(), { inFlight: 1 })));
    expect(error.message).toMatch(message);
    expect(ingest.calls).toHaveLength(1);
    expect(error.summary).toMatchObject({ accepted: 0, linesAcknowledged: 0, complete: false });
  });

  it('counts rejections by code and unparseable lines, lists them with line numbers, and completes', async () => {
    const path = join(dir, 'mixed.ndjson');
    await writeLines(path, [
      recordJson(1),
      recordJson(2, { currency: 'ZZZ' }),
      recordJson(3, { amount_minor: '12.5' }),
      '',
      recordJson(5, { occurred_at: '2020-01-01T00:00:00Z' }),
      recordJson(1),
      'garbage',
    ]);
    const ingest = new FakeIngest();
    ingest.rejectWhen = (transaction) => {
      if (transaction.currency === 'ZZZ') {
        return { rejectionCode: RejectionCode.REJECTION_CODE_INVALID_FIELD, field: 'currency', reason: 'currency: "ZZZ" is not accepted' };
      }
      if (transaction.occurredAt?.getUTCFullYear() === 2020) {
        return { rejectionCode: RejectionCode.REJECTION_CODE_TOO_OLD, field: 'occurred_at', reason: 'too old' };
      }
      return undefined;
    };
    const summary = await sendFile(options(path, ingest.transport(), { batchSize: 2 }));
    expect(summary).toMatchObject({
      linesRead: 7,
      recordsRead: 4,
      unparseable: 2,
      sent: 4,
      accepted: 1,
      duplicate: 1,
      rejected: 2,
      rejectedByCode: { INVALID_FIELD: 1, TOO_OLD: 1 },
      linesAcknowledged: 7,
      complete: true,
    });
    expect(summary.parseProblems).toEqual([
      { line: 3, reason: 'amount_minor: "12.5" is not an integer' },
      { line: 7, reason: expect.stringMatching(/^not valid JSON/) },
    ]);
    expect(summary.rejections).toEqual([
      { line: 2, transactionId: 'tx-000002', code: 'INVALID_FIELD', field: 'currency', reason: 'currency: "ZZZ" is not accepted' },
      { line: 5, transactionId: 'tx-000005', code: 'TOO_OLD', field: 'occurred_at', reason: 'too old' },
    ]);
  });

  it('lists at most maxReported problems but counts them all', async () => {
    const path = join(dir, 'bad.ndjson');
    await writeLines(path, Array.from({ length: 30 }, () => 'nope'));
    const summary = await sendFile(options(path, new FakeIngest().transport(), { maxReported: 3 }));
    expect(summary.unparseable).toBe(30);
    expect(summary.parseProblems.map((problem) => problem.line)).toEqual([1, 2, 3]);
    expect(summary).toMatchObject({ sent: 0, linesAcknowledged: 30, complete: true });
  });

  it('acknowledges trailing blank and unparseable lines after the last full batch', async () => {
    const path = join(dir, 'tail.ndjson');
    await writeLines(path, [...Array.from({ length: 10 }, (_, index) => recordJson(index + 1)), '', 'junk']);
    const summary = await sendFile(options(path, new FakeIngest().transport()));
    expect(summary).toMatchObject({ accepted: 10, unparseable: 1, linesAcknowledged: 12, complete: true });
  });

  it('stops on abort after the calls in flight finish, and a rerun resumes after the checkpoint', async () => {
    const input = await inputWith(100);
    const ingest = new FakeIngest();
    const controller = new AbortController();
    let answered = 0;
    const transport = ingest.transport((call) => (call === 3 ? 40 : 1));
    const first = await sendFile(
      options(input, transport, {
        signal: controller.signal,
        onProgress: (progress) => {
          if (progress.counts.accepted >= 30 && answered++ === 0) controller.abort();
        },
      }),
    );
    expect(first.interrupted).toBe(true);
    expect(first.complete).toBe(false);
    expect(first.linesAcknowledged).toBeGreaterThanOrEqual(30);
    expect(first.linesAcknowledged).toBeLessThan(100);
    const saved = await loadCheckpoint(`${input}.checkpoint.json`);
    expect(saved?.linesAcknowledged).toBe(first.linesAcknowledged);

    const second = await sendFile(options(input, transport));
    expect(second.resumedAfterLine).toBe(first.linesAcknowledged);
    expect(second.linesRead).toBe(100 - first.linesAcknowledged);
    expect(second.complete).toBe(true);
    expect(first.accepted + second.accepted).toBe(100);
    expect(second.duplicate).toBe(first.accepted - first.linesAcknowledged);
    expect(ingest.stored.size).toBe(100);

    const third = await sendFile(options(input, transport));
    expect(third).toMatchObject({ resumedAfterLine: 100, linesRead: 0, sent: 0, complete: true });
  });

  it('after a lost response, the rerun resends the unacknowledged batch and counts its records as duplicates', async () => {
    const input = await inputWith(100);
    const ingest = new FakeIngest();
    ingest.script = (call, transactions) => {
      if (call !== 2) return undefined;
      transactions.forEach((transaction) => ingest.resultFor(transaction)); // stored by the ingestor...
      throw grpcError(status.DEADLINE_EXCEEDED, 'deadline exceeded'); // ...but the answer never arrived
    };
    const controller = new AbortController();
    const first = await sendFile(
      options(input, ingest.transport(), {
        inFlight: 1,
        retry: { ...fastRetry, initialDelayMs: 60_000, maxDelayMs: 60_000 },
        signal: controller.signal,
        onRetry: () => controller.abort(), // the operator gives up (or the process dies) while waiting
      }),
    );
    expect(first).toMatchObject({ interrupted: true, accepted: 20, linesAcknowledged: 20, retriedCalls: 1 });
    ingest.script = () => undefined;
    const second = await sendFile(options(input, ingest.transport()));
    expect(second).toMatchObject({ resumedAfterLine: 20, sent: 80, accepted: 70, duplicate: 10, complete: true });
  });

  it('refuses to resume when the input changed, and --restart sends it all again', async () => {
    const input = await inputWith(20);
    const ingest = new FakeIngest();
    await sendFile(options(input, ingest.transport()));
    await appendFile(input, `${recordJson(21)}\n`);
    await expect(sendFile(options(input, ingest.transport()))).rejects.toThrow(CheckpointError);
    await expect(sendFile(options(input, ingest.transport()))).rejects.toThrow(/input changed .* refusing to resume/);
    const again = await sendFile(options(input, ingest.transport(), { restart: true }));
    expect(again).toMatchObject({ resumedAfterLine: 0, accepted: 1, duplicate: 20, complete: true });
  });

  it('resumes a CSV file and keeps using its header', async () => {
    const path = join(dir, 'tx.csv');
    const header = 'transaction_id,station_id,lane_id,tag_id,vehicle_class,amount_minor,currency,occurred_at';
    const rows = Array.from({ length: 25 }, (_, index) => `tx-${index + 1},st-001,L01,TAG${index},car,275,USD,2024-05-01T08:30:00Z`);
    await writeLines(path, [header, ...rows]);
    const ingest = new FakeIngest();
    const controller = new AbortController();
    const first = await sendFile(
      options(path, ingest.transport(), {
        inFlight: 1,
        signal: controller.signal,
        onProgress: (progress) => {
          if (progress.counts.accepted >= 10) controller.abort();
        },
      }),
    );
    expect(first).toMatchObject({ interrupted: true, linesAcknowledged: 11 });
    const second = await sendFile(options(path, ingest.transport()));
    expect(second).toMatchObject({ resumedAfterLine: 11, accepted: 15, duplicate: 0, unparseable: 0, complete: true });
  });

  it('treats a wrong number of results as a protocol error', async () => {
    const input = await inputWith(3);
    const ingest = new FakeIngest();
    ingest.script = () => [
      { transactionId: 'tx-000001', status: TransactionStatus.TRANSACTION_STATUS_ACCEPTED, rejectionCode: 0, field: '', reason: '' },
    ];
    const error = await expectSendError(sendFile(options(input, ingest.transport())));
    expect(error.message).toMatch(/answered 1 results for 3 records/);
  });

  it('refuses bad options before touching anything', async () => {
    const input = await inputWith(1);
    await expect(sendFile(options(input, new FakeIngest().transport(), { batchSize: 0 }))).rejects.toThrow(/batch size/);
    await expect(sendFile({ inputPath: input })).rejects.toThrow(/ingest address and a station token/);
  });
});
