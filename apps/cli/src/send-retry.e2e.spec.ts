import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Subjects, TollTransaction } from '@tollstream/contracts';
import { readDeadLetters, readTransactionStream, startIngestor, startNats, tempDir, waitFor, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './program';
import { memoryIo } from './test-support';

// `tollstream send` against the real ingestor process while its nats-server is killed: the ingestor
// answers UNAVAILABLE with a google.rpc.RetryInfo (1 s), the CLI waits as asked, gives up after
// --max-attempts with exit code 1, or completes once the broker is back, every record stored once.
jest.setTimeout(120_000);

const token = 'north-plaza-token-0123456789';
const recordCount = 200;
const batchSize = 50;
// One record per batch that the ingestor must dead-letter: with the broker gone it cannot, so the
// whole call is answered UNAVAILABLE (call level, with RetryInfo) rather than record by record.
const isBadCurrency = (index: number) => index % batchSize === 7;

describe('tollstream send while the broker is down (real nats-server and ingestor)', () => {
  let nats: NatsHandle;
  let ingestor: ServiceProcess | undefined;
  let dir: { path: string; remove: () => Promise<void> };
  let file: string;

  const send = (args: string[]) => {
    const io = memoryIo({ INGEST_ADDRESS: `127.0.0.1:${ingestor?.grpcPort}`, STATION_TOKEN: token });
    const done = runCli(['send', file, '--batch-size', String(batchSize), '--in-flight', '2', '--progress-interval', '3600', '--json', ...args], io);
    return { io, done };
  };

  beforeAll(async () => {
    nats = await startNats();
    dir = await tempDir('send-retry-e2e');
    const credentialsFile = join(dir.path, 'stations.json');
    writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'north', token, stationIds: ['st-a'] }] }));
    ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile, env: { INGEST_APPEND_DEADLINE_MS: '2000' } });
    const occurredAt = new Date(Date.now() - 60_000).toISOString();
    file = join(dir.path, 'passes.ndjson');
    const lines = Array.from({ length: recordCount }, (_, index) =>
      JSON.stringify({
        transaction_id: `tx-${index}`,
        station_id: 'st-a',
        lane_id: 'L1',
        tag_id: `TAG-${index}`,
        vehicle_class: 'car',
        amount_minor: 275,
        currency: isBadCurrency(index) ? 'ZZZ' : 'USD',
        occurred_at: occurredAt,
      }),
    );
    writeFileSync(file, `${lines.join('\n')}\n`);
  });
  afterAll(async () => {
    await ingestor?.stop();
    await nats?.stop();
    await dir?.remove();
  });

  it('gives up after --max-attempts with exit code 1 and says why, having waited the delay the ingestor asked for', async () => {
    await nats.kill();
    try {
      const startedAt = Date.now();
      const { io, done } = send(['--max-attempts', '2']);
      expect(await done).toBe(1);
      const stderr = io.err();
      expect(stderr).toMatch(/retrying lines \d+-\d+ \(attempt 2 of 2\) in 1\.\d s \(as the ingestor asked\): UNAVAILABLE: ingest failed; send the same batch again/);
      expect(stderr).toMatch(/error: gave up on lines \d+-\d+ after 2 attempts; last error UNAVAILABLE: ingest failed; send the same batch again .*rerun to resume/);
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1_000);
      const summary = JSON.parse(io.out()) as { accepted: number; linesAcknowledged: number; exitCode: number; error: { grpcCode: string } };
      expect(summary).toMatchObject({ accepted: 0, linesAcknowledged: 0, exitCode: 1, error: { grpcCode: 'UNAVAILABLE' } });
    } finally {
      await nats.start();
    }
  });

  it('retries as the ingestor asks while the broker is down, and completes once it is back: every record stored exactly once', async () => {
    await nats.kill();
    let restarted = false;
    try {
      const { io, done } = send(['--max-attempts', '30']);
      // The first retry notice proves the ingestor was refusing with RetryInfo; then the broker comes back.
      await waitFor(() => io.err().includes('(as the ingestor asked)'), { timeoutMs: 30_000, description: 'a retry as the ingestor asked' });
      await nats.start();
      restarted = true;
      const code = await done;
      const summary = JSON.parse(io.out()) as { accepted: number; duplicate: number; rejected: number; rejectedByCode: Record<string, number>; complete: boolean; retriedCalls: number };
      const badCount = Array.from({ length: recordCount }, (_, index) => index).filter(isBadCurrency).length;
      expect(code).toBe(2); // completed, with the bad currencies rejected
      expect(summary).toMatchObject({ complete: true, rejected: badCount, rejectedByCode: { INVALID_FIELD: badCount } });
      expect(summary.accepted + summary.duplicate).toBe(recordCount - badCount);
      expect(summary.retriedCalls).toBeGreaterThanOrEqual(1);

      const nc = await connect({ servers: nats.url });
      try {
        const jsm = await jetstreamManager(nc);
        const stored = (await readTransactionStream(jsm)).map((record) => record.transaction?.transactionId ?? '');
        expect(stored).toHaveLength(recordCount - badCount);
        expect(new Set(stored).size).toBe(recordCount - badCount);
        // Nothing lost: every refused record is in the dead letters (once the broker took them) with its reason.
        const deadLetters = await readDeadLetters(jsm, Subjects.deadLetter('ingestor'));
        expect(new Set(deadLetters.map((letter) => TollTransaction.decode(letter.original).transactionId))).toEqual(
          new Set(Array.from({ length: recordCount }, (_, index) => index).filter(isBadCurrency).map((index) => `tx-${index}`)),
        );
        expect(deadLetters.every((letter) => letter.reasonCode === 'INVALID_FIELD' && letter.reason.includes('currency'))).toBe(true);
      } finally {
        await nc.close();
      }
    } finally {
      if (!restarted) await nats.start();
    }
  });
});
