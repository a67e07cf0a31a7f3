/**
 * Load generator of the pipeline bench: SubmitTransactions requests encoded by hand (the wire format of
 * tolls.ingest.v1.SubmitTransactionsRequest, checked against the generated decoder at start-up) so
 * that every record carries live event time (occurredAt = now) at the cost of a buffer copy, without
 * building objects per record or holding minutes of pre-encoded requests in memory.
 */
import * as grpc from '@grpc/grpc-js';
import { IngestServiceClient, SubmitTransactionsRequest, SubmitTransactionsResponse, TransactionStatus, VehicleClass } from '@tollstream/contracts';

/** One record as the generator describes it (plate empty, currency USD, vehicle class car). */
export interface RecordSpec {
  transactionId: string;
  stationId: string;
  laneId: string;
  tagId: string;
  accountId: string;
  amountMinor: number;
}

/** Writes protobuf fields into a reusable buffer. */
class WireWriter {
  buffer: Buffer;
  position = 0;
  constructor(capacity: number) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }
  reset(): void {
    this.position = 0;
  }
  ensure(extra: number): void {
    if (this.position + extra <= this.buffer.length) return;
    const larger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.position + extra));
    this.buffer.copy(larger, 0, 0, this.position);
    this.buffer = larger;
  }
  varint(value: number): void {
    this.ensure(10);
    let v = value;
    while (v >= 0x80) {
      this.buffer[this.position++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buffer[this.position++] = v;
  }
  string(tag: number, value: string): void {
    if (value.length === 0) return;
    const length = Buffer.byteLength(value);
    this.varint(tag);
    this.varint(length);
    this.ensure(length);
    this.position += this.buffer.write(value, this.position, 'utf8');
  }
  bytes(tag: number, source: Buffer, start: number, end: number): void {
    this.varint(tag);
    this.varint(end - start);
    this.ensure(end - start);
    source.copy(this.buffer, this.position, start, end);
    this.position += end - start;
  }
}

/** Encodes SubmitTransactionsRequest bodies; one instance per generator (buffers are reused). */
export class RequestEncoder {
  private readonly record = new WireWriter(512);
  private readonly request = new WireWriter(256 * 1024);

  encode(records: readonly RecordSpec[], occurredAtMs: number): Buffer {
    this.request.reset();
    const seconds = Math.floor(occurredAtMs / 1000);
    const nanos = (occurredAtMs - seconds * 1000) * 1_000_000;
    for (const spec of records) {
      const r = this.record;
      r.reset();
      r.string(0x0a, spec.transactionId); // 1 transaction_id
      r.string(0x12, spec.stationId); // 2 station_id
      r.string(0x1a, spec.laneId); // 3 lane_id
      r.string(0x22, spec.tagId); // 4 tag_id
      r.string(0x32, spec.accountId); // 6 account_id
      r.varint(0x38); // 7 vehicle_class
      r.varint(VehicleClass.VEHICLE_CLASS_CAR);
      r.varint(0x40); // 8 amount_minor
      r.varint(spec.amountMinor);
      r.string(0x4a, 'USD'); // 9 currency
      // 10 occurred_at: google.protobuf.Timestamp { 1 seconds, 2 nanos }
      const timestampLength = 1 + varintLength(seconds) + (nanos > 0 ? 1 + varintLength(nanos) : 0);
      r.varint(0x52);
      r.varint(timestampLength);
      r.varint(0x08);
      r.varint(seconds);
      if (nanos > 0) {
        r.varint(0x10);
        r.varint(nanos);
      }
      this.request.bytes(0x0a, r.buffer, 0, r.position); // SubmitTransactionsRequest.transactions = 1
    }
    return Buffer.from(this.request.buffer.subarray(0, this.request.position));
  }
}

function varintLength(value: number): number {
  let length = 1;
  let v = value;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    length++;
  }
  return length;
}

/** Throws unless the hand encoding decodes to the same records with the generated decoder. */
export function checkEncoder(): void {
  const specs: RecordSpec[] = [
    { transactionId: 'check-1', stationId: 'st-001', laneId: 'L1', tagId: 'TAG-1', accountId: 'acct-1', amountMinor: 1234 },
    { transactionId: 'check-2-' + 'x'.repeat(150), stationId: 'st-002', laneId: 'L2', tagId: 'TAG-2', accountId: 'acct-2', amountMinor: 1 },
  ];
  const at = Date.UTC(2026, 10, 23, 12, 0, 0, 123);
  const decoded = SubmitTransactionsRequest.decode(new RequestEncoder().encode(specs, at));
  decoded.transactions.forEach((transaction, i) => {
    const spec = specs[i];
    const same =
      transaction.transactionId === spec.transactionId &&
      transaction.stationId === spec.stationId &&
      transaction.laneId === spec.laneId &&
      transaction.tagId === spec.tagId &&
      transaction.accountId === spec.accountId &&
      transaction.amountMinor === spec.amountMinor &&
      transaction.currency === 'USD' &&
      transaction.vehicleClass === VehicleClass.VEHICLE_CLASS_CAR &&
      transaction.occurredAt?.getTime() === at;
    if (!same) throw new Error(`pipeline bench: hand-encoded request does not decode to its records: ${JSON.stringify(transaction)}`);
  });
  if (decoded.transactions.length !== specs.length) throw new Error('pipeline bench: hand-encoded request lost records');
}

/** gRPC channels to the ingestor with pre-built metadata per station token. */
export class IngestSender {
  private readonly clients: IngestServiceClient[];
  private next = 0;
  constructor(address: string, channels: number) {
    this.clients = Array.from(
      { length: channels },
      (_, i) =>
        new IngestServiceClient(address, grpc.credentials.createInsecure(), {
          'grpc.max_send_message_length': 16 * 1024 * 1024,
          'grpc.channel_id': i, // distinct option => distinct connection
        } as grpc.ChannelOptions),
    );
  }

  static metadataFor(token: string): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    return metadata;
  }

  /** Sends one encoded request; resolves with the number of records accepted and not accepted. */
  send(request: Buffer, metadata: grpc.Metadata): Promise<{ accepted: number; notAccepted: number }> {
    const client = this.clients[this.next++ % this.clients.length];
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        '/tolls.ingest.v1.IngestService/SubmitTransactions',
        (encoded: Buffer) => encoded,
        (bytes: Buffer) => SubmitTransactionsResponse.decode(bytes),
        request,
        metadata,
        { deadline: Date.now() + 30_000 },
        (error: grpc.ServiceError | null, value?: SubmitTransactionsResponse) => {
          if (error || !value) return reject(error ?? new Error('empty response'));
          let accepted = 0;
          for (const result of value.results) if (result.status === TransactionStatus.TRANSACTION_STATUS_ACCEPTED) accepted++;
          resolve({ accepted, notAccepted: value.results.length - accepted });
        },
      ),
    );
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}
