import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Subjects, TransactionStatus, type TollTransaction } from '@tollstream/contracts';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { createGrpcIngestTransport } from '@tollstream/station-sender';
import { aTollTransaction, readDeadLetters, readTransactionStream, startIngestor, startNats, tempDir, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './program';
import { memoryIo, runCliProcess } from './test-support';

// The operator's loop as a separate process against a real nats-server and the real ingestor:
// find dead letters, look at one, export and fix by hand, fix the cause, re-drive (killed with
// SIGKILL half-way and run again), and nothing is stored twice.
jest.setTimeout(120_000);

const northToken = 'north-plaza-token-0123456789';
const opsToken = 'operations-redrive-token-0123456789';
const deniedCount = 300;

describe('tollstream dlq (child process, real nats-server and ingestor)', () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let ingestor: ServiceProcess | undefined;
  let dir: { path: string; remove: () => Promise<void> };

  const startTheIngestor = async (opsStations: string[]) => {
    const credentialsFile = join(dir.path, `stations-${opsStations.length}.json`);
    writeFileSync(
      credentialsFile,
      JSON.stringify({
        stations: [
          { name: 'north', token: northToken, stationIds: ['st-a'] },
          { name: 'operations', token: opsToken, stationIds: opsStations },
        ],
      }),
    );
    ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile });
  };
  const submit = async (token: string, transactions: TollTransaction[]) => {
    const transport = createGrpcIngestTransport({ address: `127.0.0.1:${ingestor?.grpcPort}`, token });
    try {
      return (await transport.submitTransactions({ transactions }, new Date(Date.now() + 30_000))).results;
    } finally {
      transport.close();
    }
  };
  const cliEnv = () => ({ NATS_URL: nats.url, INGEST_ADDRESS: `127.0.0.1:${ingestor?.grpcPort}`, STATION_TOKEN: opsToken, TOLLSTREAM_OPERATOR: 'e2e-operator' });
  // In this process (fast), except the run that is killed: that one is its own process.
  const cli = async (args: string[], env: NodeJS.ProcessEnv = cliEnv()) => {
    const io = memoryIo(env);
    const code = await runCli(args, io);
    return { code, stdout: io.out(), stderr: io.err() };
  };
  const marks = async () => (await jsm.streams.info('KV_dlq-redrives')).state.messages;

  beforeAll(async () => {
    nats = await startNats();
    dir = await tempDir('dlq-e2e');
    nc = await connect({ servers: nats.url });
    jsm = await jetstreamManager(nc);
    await provisionTopology(jsm, declareTopology());
  });
  afterAll(async () => {
    await ingestor?.stop();
    await nc?.close();
    await nats?.stop();
    await dir?.remove();
  });

  it('lists, shows, exports, and re-drives after a SIGKILL without storing anything twice', async () => {
    await startTheIngestor(['st-a']);
    const occurredAt = new Date(Date.now() - 60_000);
    // Records of station st-b sent with a credential that was not yet allowed for st-b.
    const denied = Array.from({ length: deniedCount }, (_, index) => aTollTransaction({ transactionId: `tx-b-${index}`, stationId: 'st-b', occurredAt }));
    for (let start = 0; start < denied.length; start += 100) await submit(opsToken, denied.slice(start, start + 100));
    const badCurrency = aTollTransaction({ transactionId: 'tx-a-currency', stationId: 'st-a', currency: 'ZZZ', occurredAt });
    expect((await submit(northToken, [badCurrency]))[0].status).toBe(TransactionStatus.TRANSACTION_STATUS_REJECTED);
    expect(await readDeadLetters(jsm, Subjects.deadLetter('ingestor'))).toHaveLength(deniedCount + 1);

    // Bad filters: a clear message and exit code 1.
    const badReason = await cli(['dlq', 'list', '--reason', 'NOT_A_CODE']);
    expect(badReason.code).toBe(1);
    expect(badReason.stderr).toMatch(/error: --reason: unknown reason code "NOT_A_CODE" \(codes: INVALID_FIELD, PERMISSION_DENIED/);
    const everything = await cli(['dlq', 'redrive']);
    expect(everything.code).toBe(1);
    expect(everything.stderr).toContain('say which dead letters: ids, a filter');

    // Paging.
    const page = await cli(['dlq', 'list', '--source', 'ingestor', '--reason', 'PERMISSION_DENIED', '--limit', '100', '--format', 'json']);
    expect(page.code).toBe(0);
    const first = JSON.parse(page.stdout) as { deadLetters: Array<{ id: number; reasonCode: string; stationId: string; redrive: unknown }>; next: number };
    expect(first.deadLetters).toHaveLength(100);
    expect(first.deadLetters.every((letter) => letter.reasonCode === 'PERMISSION_DENIED' && letter.stationId === 'st-b' && letter.redrive === null)).toBe(true);
    const nextPage = await cli(['dlq', 'list', '--reason', 'PERMISSION_DENIED', '--after', String(first.next), '--limit', '1000', '--format', 'ndjson']);
    expect(nextPage.stdout.trim().split('\n')).toHaveLength(deniedCount - 100);
    const table = await cli(['dlq', 'list', '--reason', 'INVALID_FIELD']);
    expect(table.stdout).toMatch(/│ ingestor\s+│ INVALID_FIELD\s+│ st-a\s+│ currency: "ZZZ" is not an accepted ISO 4217 code/);
    const currencyId = Number(/^\s*(\d+) │/m.exec(table.stdout)?.[1]);

    // One dead letter in full: the reason, the record decoded, where it came from.
    const shown = await cli(['dlq', 'show', String(currencyId)]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('reason            INVALID_FIELD: currency: "ZZZ" is not an accepted ISO 4217 code');
    expect(shown.stdout).toContain('came from         the station API');
    expect(shown.stdout).toContain('"transactionId": "tx-a-currency"');
    expect((await cli(['dlq', 'show', '999999'])).stderr).toContain('no dead letter 999999 in TOLL_DLQ');

    // Export, fix by hand, send back with the station's own token.
    const exported = join(dir.path, 'fix.ndjson');
    const exportRun = await cli(['dlq', 'export', '--reason', 'INVALID_FIELD', '--out', exported]);
    expect(exportRun.stderr).toContain('exported 1 station record');
    writeFileSync(exported, readFileSync(exported, 'utf8').replace('"currency":"ZZZ"', '"currency":"USD"'));
    const sent = await cli(['send', exported, '--json', '--no-progress'], { INGEST_ADDRESS: `127.0.0.1:${ingestor?.grpcPort}`, STATION_TOKEN: northToken });
    expect(JSON.parse(sent.stdout)).toMatchObject({ accepted: 1, rejected: 0 });

    // Fix the cause (the operations credential may now submit for st-b), then re-drive, killed half-way.
    await ingestor?.stop();
    await startTheIngestor(['st-a', 'st-b']);
    const dry = await cli(['dlq', 'redrive', '--source', 'ingestor', '--dry-run', '--json']);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, selected: deniedCount + 1 });
    expect(await readTransactionStream(jsm)).toHaveLength(1);

    let killedAtMarks = 0;
    const killed = await runCliProcess(['dlq', 'redrive', '--source', 'ingestor', '--batch-size', '1'], cliEnv(), (pid) => {
      const poll = setInterval(() => {
        marks()
          .then((count) => {
            if (count >= 40 && killedAtMarks === 0) {
              killedAtMarks = count;
              clearInterval(poll);
              process.kill(pid, 'SIGKILL');
            }
          })
          .catch(() => undefined); // the bucket does not exist until the run opens it
      }, 10);
    });
    expect(killed.signal).toBe('SIGKILL');
    const marksAfterKill = await marks();
    expect(marksAfterKill).toBeGreaterThanOrEqual(40);
    expect(marksAfterKill).toBeLessThan(deniedCount + 1);

    const resumed = await cli(['dlq', 'redrive', '--source', 'ingestor', '--json', '--no-progress']);
    const summary = JSON.parse(resumed.stdout) as { counts: Record<string, number> };
    // The killed run's marks are kept; a record it stored but did not mark yet is answered DUPLICATE.
    expect(summary.counts['already-redriven']).toBe(marksAfterKill);
    expect(summary.counts.accepted + summary.counts.duplicate + summary.counts['rejected-again']).toBe(deniedCount + 1 - marksAfterKill);
    expect(summary.counts.duplicate).toBeLessThanOrEqual(1);
    expect(resumed.code).toBe(2); // the ZZZ original is still wrong: rejected again

    const again = await cli(['dlq', 'redrive', '--source', 'ingestor', '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ counts: { accepted: 0, duplicate: 0, 'rejected-again': 0, 'already-redriven': deniedCount + 1 } });

    // Stream content: every record exactly once.
    const stored = (await readTransactionStream(jsm)).map((record) => record.transaction?.transactionId ?? '');
    expect(stored).toHaveLength(deniedCount + 1);
    expect(new Set(stored)).toEqual(new Set([...denied.map((record) => record.transactionId), 'tx-a-currency']));

    // Marked, never deleted; counted in status (the killed run recorded its marks, not its run record).
    const marked = JSON.parse((await cli(['dlq', 'list', '--reason', 'INVALID_FIELD', '--format', 'json'])).stdout) as { deadLetters: Array<{ redrive: { outcome: string; by: string } }> };
    expect(marked.deadLetters[0].redrive).toMatchObject({ outcome: 'rejected-again', by: 'e2e-operator' });
    const status = await cli(['status']);
    expect(status.stdout).toMatch(new RegExp(`dead letters re-driven: ${deniedCount + 1} in 2 runs \\(accepted \\d+, (duplicate \\d+, )?rejected-again 1\\)`));
    const { deadLetterRedrives } = JSON.parse((await cli(['status', '--json'])).stdout) as { deadLetterRedrives: { runs: number; redriven: number; byOutcome: Record<string, number> } };
    expect(deadLetterRedrives).toMatchObject({ runs: 2, redriven: deniedCount + 1, byOutcome: { 'rejected-again': 1, republished: 0, failed: 0 } });
    expect(deadLetterRedrives.byOutcome.accepted + deadLetterRedrives.byOutcome.duplicate).toBe(deniedCount);
    expect(await readDeadLetters(jsm, Subjects.deadLetter('ingestor'))).toHaveLength(deniedCount + 1);
  });
});
