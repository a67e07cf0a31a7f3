import { status } from '@grpc/grpc-js';
import { retryLaterError } from '@tollstream/service-kit';
import { join } from 'node:path';
import { SendError } from './errors';
import { sendFile } from './send-file';
import { FakeIngest, grpcError, makeTempDir, recordJson, startFakeIngestServer, writeLines } from './test-support';

// The sender against a real grpc-js server (a protocol double of the ingestor), over a socket.
describe('sendFile over gRPC', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let ingest: FakeIngest;
  let server: { address: string; stop: () => Promise<void> };
  const token = 'st-001.secret-token';

  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    ingest = new FakeIngest();
    server = await startFakeIngestServer(ingest, token);
  });
  afterEach(async () => {
    await server.stop();
    await cleanup();
  });

  async function input(count: number): Promise<string> {
    const path = join(dir, 'tx.ndjson');
    await writeLines(path, Array.from({ length: count }, (_, index) => recordJson(index + 1)));
    return path;
  }

  it('authenticates, retries a first UNAVAILABLE, then resumes an interrupted run from its checkpoint', async () => {
    const path = await input(250);
    ingest.script = (call) => {
      if (call === 0) throw grpcError(status.UNAVAILABLE, 'warming up');
    };
    const controller = new AbortController();
    const first = await sendFile({
      inputPath: path,
      ingestAddress: server.address,
      token,
      batchSize: 50,
      inFlight: 2,
      retry: { initialDelayMs: 5, maxDelayMs: 20 },
      signal: controller.signal,
      onProgress: (progress) => {
        if (progress.counts.accepted >= 100) controller.abort();
      },
    });
    expect(first).toMatchObject({ interrupted: true, retriedCalls: 1 });
    expect(first.linesAcknowledged).toBeGreaterThanOrEqual(100);
    expect(first.linesAcknowledged).toBeLessThan(250);

    const second = await sendFile({ inputPath: path, ingestAddress: server.address, token, batchSize: 50 });
    expect(second).toMatchObject({ resumedAfterLine: first.linesAcknowledged, complete: true, rejected: 0 });
    expect(first.accepted + second.accepted).toBe(250);
    expect(ingest.stored.size).toBe(250);
  });

  it('reads the RetryInfo of the grpc-status-details-bin trailer and waits that long', async () => {
    const path = await input(20);
    ingest.script = (call) => {
      if (call === 0) throw retryLaterError(status.UNAVAILABLE, 'broker not answering', 250);
    };
    const notices: Array<{ delayMs: number; askedDelayMs?: number; reason: string }> = [];
    const summary = await sendFile({
      inputPath: path,
      ingestAddress: server.address,
      token,
      retry: { initialDelayMs: 5, maxDelayMs: 20 },
      random: () => 0,
      onRetry: ({ delayMs, askedDelayMs, reason }) => notices.push({ delayMs, askedDelayMs, reason }),
    });
    expect(notices).toEqual([{ delayMs: 250, askedDelayMs: 250, reason: 'UNAVAILABLE: broker not answering' }]);
    expect(summary).toMatchObject({ accepted: 20, retriedCalls: 1, complete: true });
    expect(ingest.stored.size).toBe(20);
  });

  it('fails at once with UNAUTHENTICATED for a wrong token', async () => {
    const path = await input(10);
    const failure = await sendFile({ inputPath: path, ingestAddress: server.address, token: 'wrong' }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(SendError);
    expect((failure as SendError).grpcCode).toBe('UNAUTHENTICATED');
    expect((failure as SendError).message).not.toContain('wrong');
    expect(ingest.calls).toHaveLength(0);
  });

  it('gives up on an address where nothing listens', async () => {
    const path = await input(10);
    await server.stop();
    const failure = await sendFile({
      inputPath: path,
      ingestAddress: server.address,
      token,
      retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 10 },
    }).catch((error: unknown) => error);
    expect((failure as SendError).message).toMatch(/gave up on lines 1-10 after 3 attempts; last error UNAVAILABLE/);
  });
});
