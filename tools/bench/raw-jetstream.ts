import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

export interface RawJetStreamFigures {
  perMessagePublishPerSecond: number;
  packedRecordsPublishPerSecond: number;
  consumePerSecond: number;
}

/** The broker's own limits on this machine, measured in the same run as the service under test. */
export async function measureRawJetStream(natsUrl: string, messages = 100_000): Promise<RawJetStreamFigures> {
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'BENCH_RAW', subjects: ['bench.raw.>'] });
  const js = jetstream(nc);
  const payload = new Uint8Array(160); // about one encoded IngestedTransaction

  const publishMany = async (count: number, body: Uint8Array, inFlight: number) => {
    const started = performance.now();
    const pending = new Set<Promise<unknown>>();
    for (let i = 0; i < count; i++) {
      const publish = js.publish(`bench.raw.${i % 8}`, body, { msgID: `m-${body.length}-${i}` });
      pending.add(publish);
      void publish.finally(() => pending.delete(publish));
      if (pending.size >= inFlight) await Promise.race(pending);
    }
    await Promise.all(pending);
    return (performance.now() - started) / 1000;
  };

  const perMessageSeconds = await publishMany(messages, payload, 2_000);
  const packed = new Uint8Array(160 * 500);
  const packedMessages = Math.max(20, Math.floor(messages / 500));
  const packedSeconds = await publishMany(packedMessages, packed, 64);

  const consumer = await (async () => {
    await jsm.consumers.add('BENCH_RAW', { durable_name: 'bench', ack_policy: 'none' as never, filter_subject: 'bench.raw.>' });
    return js.consumers.get('BENCH_RAW', 'bench');
  })();
  const total = messages + packedMessages;
  const started = performance.now();
  let seen = 0;
  const iterator = await consumer.consume({ max_messages: 10_000 });
  for await (const _message of iterator) {
    if (++seen >= total) break;
  }
  const consumeSeconds = (performance.now() - started) / 1000;
  await jsm.streams.delete('BENCH_RAW');
  await nc.close();
  return {
    perMessagePublishPerSecond: Math.round(messages / perMessageSeconds),
    packedRecordsPublishPerSecond: Math.round((packedMessages * 500) / packedSeconds),
    consumePerSecond: Math.round(total / consumeSeconds),
  };
}
