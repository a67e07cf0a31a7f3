import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { Streams } from '@tollstream/contracts';

export interface StreamStatus {
  stream: string;
  exists: boolean;
  messages: number;
  bytes: number;
  firstTime?: string;
  lastTime?: string;
  /** Messages per subject (e.g. dead letters per source, appends per partition). */
  subjects: Record<string, number>;
  /** durable: a named consumer that survives restarts (a service's); else an ephemeral (ordered) reader. */
  consumers: Array<{ name: string; durable: boolean; pending: number; ackPending: number; redelivered: number }>;
}

/** What an operator wants to see of the platform's streams: sizes, per-subject counts, consumer lag. */
export async function inspectStreams(
  jsm: JetStreamManager,
  streams: readonly string[] = Object.values(Streams),
): Promise<StreamStatus[]> {
  const statuses: StreamStatus[] = [];
  for (const stream of streams) {
    try {
      const info = await jsm.streams.info(stream, { subjects_filter: '>' });
      const consumers: StreamStatus['consumers'] = [];
      for await (const consumer of jsm.consumers.list(stream)) {
        consumers.push({
          name: consumer.name,
          durable: consumer.config.durable_name !== undefined,
          pending: consumer.num_pending,
          ackPending: consumer.num_ack_pending,
          redelivered: consumer.num_redelivered,
        });
      }
      statuses.push({
        stream,
        exists: true,
        messages: info.state.messages,
        bytes: info.state.bytes,
        firstTime: info.state.messages > 0 ? info.state.first_ts : undefined,
        lastTime: info.state.messages > 0 ? info.state.last_ts : undefined,
        subjects: { ...(info.state.subjects ?? {}) },
        consumers,
      });
    } catch (error) {
      if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.StreamNotFound) throw error;
      statuses.push({ stream, exists: false, messages: 0, bytes: 0, subjects: {}, consumers: [] });
    }
  }
  return statuses;
}
