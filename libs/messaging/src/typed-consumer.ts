import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { originalMsgIdOf, type DeadLetterPublisher } from './dead-letters';

/** The generated ts-proto codec of a message type. */
export interface MessageCodec<T> {
  decode(input: Uint8Array): T;
  encode(message: T): { finish(): Uint8Array };
}

/** Thrown by a handler for input that can never be processed: the message goes to the dead letters. */
export class PoisonMessageError extends Error {
  constructor(
    readonly reasonCode: string,
    message: string,
  ) {
    super(message);
    this.name = 'PoisonMessageError';
  }
}

export interface TypedConsumerOptions<T> {
  consumer: Consumer;
  codec: MessageCodec<T>;
  deadLetters: DeadLetterPublisher;
  /** Processes one decoded message; the message is acknowledged only after this resolves. */
  handle: (message: T, raw: JsMsg) => Promise<void>;
  /** Messages fetched ahead; bounds memory. */
  maxMessagesInFlight?: number;
  onError?: (error: unknown, raw: JsMsg) => void;
}

export interface RunningConsumer {
  /** Stops fetching, lets the message in hand finish and be acknowledged, then resolves. */
  stop(): Promise<void>;
  done: Promise<void>;
}

/**
 * Consumes protobuf messages one at a time from a durable pull consumer. Undecodable input and
 * PoisonMessageError go to the dead letters with the reason and the original bytes, then are
 * acknowledged: nothing is dropped and one bad record never blocks a partition. Any other error
 * leaves the message unacknowledged (nak) so it is redelivered.
 */
export async function startTypedConsumer<T>(options: TypedConsumerOptions<T>): Promise<RunningConsumer> {
  const messages: ConsumerMessages = await options.consumer.consume({
    max_messages: options.maxMessagesInFlight ?? 256,
  });
  const done = (async () => {
    for await (const raw of messages) {
      let decoded: T;
      try {
        decoded = options.codec.decode(raw.data);
      } catch (error) {
        await options.deadLetters.publish({
          reasonCode: 'UNDECODABLE',
          reason: `cannot decode protobuf: ${(error as Error).message}`,
          original: raw.data,
          originalSubject: raw.subject,
          originalMsgId: originalMsgIdOf(raw),
        });
        raw.ack();
        continue;
      }
      try {
        await options.handle(decoded, raw);
        raw.ack();
      } catch (error) {
        if (error instanceof PoisonMessageError) {
          await options.deadLetters.publish({
            reasonCode: error.reasonCode,
            reason: error.message,
            original: raw.data,
            originalSubject: raw.subject,
          originalMsgId: originalMsgIdOf(raw),
          });
          raw.ack();
        } else {
          options.onError?.(error, raw);
          raw.nak(1000);
        }
      }
    }
  })();
  return {
    done,
    async stop() {
      await messages.close();
      await done;
    },
  };
}
