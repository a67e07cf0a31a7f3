import { createHash } from 'node:crypto';
import type { JetStreamClient, JsMsg, PubAck } from '@nats-io/jetstream';
import { DeadLetter, Subjects } from '@tollstream/contracts';

export interface DeadLetterInput {
  reasonCode: string;
  reason: string;
  original: Uint8Array;
  originalSubject?: string;
  /** Nats-Msg-Id of the original stream message (see originalMsgIdOf), so a re-drive can be deduplicated. */
  originalMsgId?: string;
  stationId?: string;
}

/** The Nats-Msg-Id header of a stream message, or '' when it was published without one. */
export function originalMsgIdOf(msg: Pick<JsMsg, 'headers'>): string {
  return msg.headers?.get('Nats-Msg-Id') ?? '';
}

/** Publishes what could not be accepted or processed, with the reason, to tolls.dlq.<source>. */
export class DeadLetterPublisher {
  constructor(
    private readonly js: JetStreamClient,
    private readonly source: string,
    private readonly onPublished: (reasonCode: string) => void = () => undefined,
  ) {}

  async publish(input: DeadLetterInput): Promise<PubAck> {
    const letter: DeadLetter = {
      source: this.source,
      reasonCode: input.reasonCode,
      reason: input.reason,
      original: Buffer.from(input.original.buffer, input.original.byteOffset, input.original.byteLength),
      originalSubject: input.originalSubject ?? '',
      originalMsgId: input.originalMsgId ?? '',
      stationId: input.stationId ?? '',
      deadLetteredAt: new Date(),
    };
    // Deterministic id: the same bad record retried, or replayed, is stored once (within the window).
    const msgID = createHash('sha256')
      .update(this.source)
      .update('\0')
      .update(input.reasonCode)
      .update('\0')
      .update(input.stationId ?? '')
      .update('\0')
      .update(input.original)
      .digest('base64url');
    const ack = await this.js.publish(Subjects.deadLetter(this.source), DeadLetter.encode(letter).finish(), { msgID });
    this.onPublished(input.reasonCode);
    return ack;
  }
}
