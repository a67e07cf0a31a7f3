import type { JetStreamManager } from '@nats-io/jetstream';
import {
  DeadLetter,
  Streams,
  TransactionBatch,
  VehicleClass,
  type IngestedTransaction,
  type TollTransaction,
} from '@tollstream/contracts';

/** A valid toll transaction for tests; override what the test is about. */
export function aTollTransaction(overrides: Partial<TollTransaction> = {}): TollTransaction {
  return {
    transactionId: 'tx-1',
    stationId: 'st-001',
    laneId: 'L1',
    tagId: 'TAG-1',
    plate: 'ABC 123',
    accountId: 'acct-1',
    vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
    amountMinor: 250,
    currency: 'USD',
    occurredAt: new Date('2026-11-22T10:00:00Z'),
    ...overrides,
  };
}

/** Every stored message of a stream, in stream order (tests read small streams whole). */
async function readStream(jsm: JetStreamManager, stream: string): Promise<Array<{ subject: string; data: Uint8Array }>> {
  const info = await jsm.streams.info(stream);
  const messages: Array<{ subject: string; data: Uint8Array }> = [];
  if (info.state.messages === 0) return messages;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const message = await jsm.streams.getMessage(stream, { seq });
    if (message) messages.push({ subject: message.subject, data: message.data });
  }
  return messages;
}

/** Every transaction stored in TOLL_TX (unpacked from its batches), in stream order. */
export async function readTransactionStream(jsm: JetStreamManager, subject?: string): Promise<IngestedTransaction[]> {
  const stored: IngestedTransaction[] = [];
  for (const message of await readStream(jsm, Streams.transactions)) {
    if (subject && message.subject !== subject) continue;
    stored.push(...TransactionBatch.decode(message.data).transactions);
  }
  return stored;
}

/** Every dead letter in TOLL_DLQ, optionally of one subject, in stream order. */
export async function readDeadLetters(jsm: JetStreamManager, subject?: string): Promise<DeadLetter[]> {
  return (await readStream(jsm, Streams.deadLetters))
    .filter((message) => !subject || message.subject === subject)
    .map((message) => DeadLetter.decode(message.data));
}
