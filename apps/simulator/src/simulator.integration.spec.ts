import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, readTransactionStream, startIngestor, startNats, tempDir, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runSimulatorCli } from './program';
import type { RunSummary } from './run';

describe('simulator against a real ingestor and nats-server', () => {
  let nats: NatsHandle;
  let ingestor: ServiceProcess;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let dir: { path: string; remove: () => Promise<void> };

  beforeAll(async () => {
    dir = await tempDir('simulator-it');
    nats = await startNats();
    // The scenario command writes the ingestor's credentials, as an operator would.
    const lines: string[] = [];
    const out = new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(chunk.toString()), cb()) });
    expect(await runSimulatorCli(['scenario', '--out', dir.path, '--seed', 'it', '--stations', '4', '--accounts', '50'], { stdout: out, stderr: out, handleSignals: false })).toBe(0);
    ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile: join(dir.path, 'ingest-stations.json') });
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    await ingestor?.stop();
    await nats?.stop();
    await dir?.remove();
  });

  it('submits a few thousand records with faults: accepted = valid unique records, duplicates and malformed answered as labelled', async () => {
    let stdout = '';
    let stderr = '';
    const code = await runSimulatorCli(
      [
        'run',
        '--ingest-address', `127.0.0.1:${ingestor.grpcPort}`,
        '--token-file', join(dir.path, 'station-token'),
        '--seed', 'it', '--stations', '4', '--accounts', '50',
        '--rate', '20', '--pattern', 'flat',
        '--backfill', '5m', '--max-records', '3000',
        '--faults', 'duplicates=0.1,out-of-order=2s,late=1m:0.01,malformed=0.01,silent=st-004@2m',
        '--batch-size', '50', '--concurrency', '2', '--progress-interval', '60',
      ],
      {
        stdout: new Writable({ write: (chunk: Buffer, _e, cb) => ((stdout += chunk.toString()), cb()) }),
        stderr: new Writable({ write: (chunk: Buffer, _e, cb) => ((stderr += chunk.toString()), cb()) }),
        handleSignals: false,
      },
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const summary = JSON.parse(stdout.trim().split('\n').pop() as string) as RunSummary;
    const generated = summary.generated;
    expect(summary.event).toBe('summary');
    expect(generated.validRecords + generated.malformedRecords).toBe(3000);
    expect(generated.duplicateRecords).toBeGreaterThan(0);
    expect(generated.malformedRecords).toBeGreaterThan(0);
    expect(generated.lateRecords).toBeGreaterThan(0);
    expect(generated.outOfOrderRecords).toBeGreaterThan(0);
    expect(generated.silencedRecords).toBeGreaterThan(0);
    expect(generated.lateHeld).toBe(0);

    expect(summary.accepted).toBe(generated.validRecords);
    expect(summary.duplicate).toBe(generated.duplicateRecords);
    expect(summary.rejectedByField).toEqual(generated.malformedByField);
    expect(summary.unexpectedRejections).toBe(0);

    const stored = (await readTransactionStream(jsm)).flatMap((record) => (record.transaction ? [record.transaction] : []));
    expect(stored).toHaveLength(summary.accepted);
    expect(new Set(stored.map((t) => t.transactionId)).size).toBe(stored.length);
    const silentFrom = Date.parse(summary.eventTimeStart) + 2 * 60_000;
    // Nothing from the silent station after it went silent; records before, and late ones held back from before, are stored.
    expect(stored.filter((t) => t.stationId === 'st-004' && (t.occurredAt as Date).getTime() >= silentFrom)).toEqual([]);
    expect(stored.some((t) => t.stationId === 'st-004')).toBe(true);
  }, 180_000);

  it('runs live at wall-clock time for a duration, with progress lines and Prometheus metrics', async () => {
    const httpPort = await freePort();
    let stdout = '';
    const running = runSimulatorCli(
      ['run', '--ingest-address', `127.0.0.1:${ingestor.grpcPort}`, '--token-file', join(dir.path, 'station-token'), '--seed', 'live', '--stations', '4', '--accounts', '50',
        '--rate', '40', '--pattern', 'flat', '--duration', '4', '--progress-interval', '1', '--http-port', String(httpPort), '--backfill', '20s'],
      { stdout: new Writable({ write: (chunk: Buffer, _e, cb) => ((stdout += chunk.toString()), cb()) }), stderr: process.stderr, handleSignals: false },
    );
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    expect(metrics).toMatch(/tollstream_simulator_records_sent_total\{service="simulator"\} \d+/);
    expect(metrics).toContain('tollstream_simulator_records_per_second');
    expect(await running).toBe(0);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as RunSummary);
    expect(lines.filter((line) => line.event === 'progress').length).toBeGreaterThanOrEqual(2);
    // The 20 s of history went first; "live" is announced once, when event time reached the clock.
    const live = lines.filter((line) => line.event === 'live');
    expect(live).toHaveLength(1);
    expect(Date.parse(live[0].eventTime)).toBeGreaterThan(Date.now() - 10_000);
    const summary = lines[lines.length - 1] as RunSummary;
    expect(summary.event).toBe('summary');
    // 20 s of history and about 4 s of live traffic at 40 records/s; live generation never runs ahead of the clock.
    expect(summary.accepted).toBe(summary.generated.validRecords);
    expect(summary.accepted).toBeGreaterThan(800 + 80);
    expect(summary.accepted).toBeLessThan(800 + 240);
    expect(Date.parse(summary.eventTime)).toBeLessThanOrEqual(Date.now());
  }, 60_000);

  it('stops with a clear error when the ingestor does not know the token', async () => {
    const wrongToken = join(dir.path, 'wrong-token');
    await writeFile(wrongToken, 'not-the-right-token-0123456789\n');
    let stderr = '';
    const sink = new Writable({ write: (_chunk: Buffer, _e, cb) => cb() });
    const code = await runSimulatorCli(['run', '--ingest-address', `127.0.0.1:${ingestor.grpcPort}`, '--token-file', wrongToken, '--stations', '2', '--max-records', '10', '--backfill', '1m'], {
      stdout: sink,
      stderr: new Writable({ write: (chunk: Buffer, _e, cb) => ((stderr += chunk.toString()), cb()) }),
      handleSignals: false,
    });
    expect(code).toBe(1);
    expect(stderr).toContain('refused the batch');
    expect(stderr).not.toContain('not-the-right-token');
  }, 60_000);
});
