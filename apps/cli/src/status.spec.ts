import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Subjects } from '@tollstream/contracts';
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
    const json = JSON.parse((await run(['status', '--nats-url', nats.url, '--json'])).out) as Array<{ stream: string; messages: number }>;
    const counts = new Map(json.map((s) => [s.stream, s.messages]));
    expect([counts.get('TOLL_TX'), counts.get('TOLL_DLQ'), counts.get('TOLL_AGG')]).toEqual([1, 1, 0]);
  });

  it('fails with a clear message and exit code 1 when NATS cannot be reached', async () => {
    const result = await run(['status', '--nats-url', 'nats://127.0.0.1:1']);
    expect(result.code).toBe(1);
    expect(result.err).toContain('cannot read the streams');
  });
});
