import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Subjects } from '@tollstream/contracts';
import { RedriveLedger, type RedriveMark } from '@tollstream/dead-letters';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { PassThrough } from 'node:stream';
import { runCli } from './program';

describe('tollstream status (real nats-server)', () => {
  let nats: NatsHandle;
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => nats?.stop());

  const run = async (args: string[]) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const chunks: string[] = [];
    const errors: string[] = [];
    stdout.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
    stderr.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
    const code = await runCli(args, { stdout, stderr, env: {}, stderrIsTTY: false, handleSignals: false });
    return { code, out: chunks.join(''), err: errors.join('') };
  };

  it('says which streams are not provisioned, then shows partitions and dead letters', async () => {
    const before = await run(['status', '--nats-url', nats.url]);
    expect(before.code).toBe(0);
    expect(before.out).toContain('TOLL_TX: not provisioned yet');

    const nc = await connect({ servers: nats.url });
    await provisionTopology(await jetstreamManager(nc), declareTopology({ transactionPartitions: 2 }));
    const js = jetstream(nc);
    await js.publish(Subjects.transactionPartition(1), new Uint8Array([1]));
    await js.publish(Subjects.deadLetter('ingestor'), new Uint8Array([2]));
    await nc.close();

    const after = await run(['status', '--nats-url', nats.url]);
    expect(after.out).toMatch(/TOLL_TX: 1 messages/);
    expect(after.out).toMatch(/tolls\.tx\.1\s+1/);
    expect(after.out).toMatch(/tolls\.dlq\.ingestor\s+1/);
    expect(after.out).toContain('dead letters re-driven: none (no re-drive has run)');
    const json = JSON.parse((await run(['status', '--nats-url', nats.url, '--json'])).out) as {
      streams: Array<{ stream: string; messages: number }>;
      deadLetterRedrives: unknown;
    };
    const counts = new Map(json.streams.map((s) => [s.stream, s.messages]));
    expect([counts.get('TOLL_TX'), counts.get('TOLL_DLQ'), counts.get('TOLL_AGG')]).toEqual([1, 1, 0]);
    expect(json.deadLetterRedrives).toEqual({
      runs: 0,
      redriven: 0,
      byOutcome: { accepted: 0, duplicate: 0, 'rejected-again': 0, republished: 0, failed: 0 },
    });
  });

  it('counts the re-drives of the dlq-redrives ledger in the text and, with the same figures, in --json', async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const ledger = await RedriveLedger.open(jetstream(nc));
      const mark = (outcome: RedriveMark['outcome']): RedriveMark => ({ outcome, route: 'station-api', detail: '', by: 'ops', at: new Date(0).toISOString(), runId: 'r1' });
      await ledger.mark(1, mark('failed'));
      await ledger.mark(1, mark('accepted')); // the latest outcome of a dead letter is the one counted
      await ledger.mark(2, mark('accepted'));
      await ledger.mark(3, mark('rejected-again'));
      await ledger.mark(4, { ...mark('republished'), route: 'republish' });
      await ledger.mark(5, mark('failed'));
      const run = { by: 'ops', startedAt: '', finishedAt: '', filter: {}, selected: 5, counts: { accepted: 0, duplicate: 0, 'rejected-again': 0, republished: 0, failed: 0, 'not-redrivable': 0, 'already-redriven': 0 }, incomplete: false };
      await ledger.recordRun({ ...run, runId: 'r1' });
      await ledger.recordRun({ ...run, runId: 'r2' });
    } finally {
      await nc.close();
    }
    const text = await run(['status', '--nats-url', nats.url]);
    expect(text.out).toContain('dead letters re-driven: 5 in 2 runs (accepted 2, failed 1, rejected-again 1, republished 1)');
    const json = JSON.parse((await run(['status', '--nats-url', nats.url, '--json'])).out) as { deadLetterRedrives: unknown };
    expect(json.deadLetterRedrives).toEqual({
      runs: 2,
      redriven: 5,
      byOutcome: { accepted: 2, duplicate: 0, 'rejected-again': 1, republished: 1, failed: 1 },
    });
  });

  it('fails with a clear message and exit code 1 when NATS cannot be reached', async () => {
    const result = await run(['status', '--nats-url', 'nats://127.0.0.1:1']);
    expect(result.code).toBe(1);
    expect(result.err).toContain('cannot read the streams');
  });
});
