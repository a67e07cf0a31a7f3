import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/**
 * The fields of one stream record that windows need. One instance is reused for every record of a
 * batch (the visitor must copy what it keeps): at 150,000 records/s the objects, Dates and strings of
 * a full decode (lane, tag, plate, transaction id, ingest time) cost more than the windows themselves.
 */
export interface WindowedRecord {
  stationId: string;
  accountId: string;
  currency: string;
  vehicleClass: number;
  amountMinor: number;
  /** NaN when the record has no event time. */
  occurredAtMs: number;
  /** The encoded IngestedTransaction, for records that must be forwarded (late records); made on demand. */
  encoded(): Uint8Array;
}

// Field numbers of tolls.stream.v1.TransactionBatch / IngestedTransaction and tolls.ingest.v1.TollTransaction.
const BATCH_TRANSACTIONS = 2;
const INGESTED_TRANSACTION = 1;
const TX_STATION_ID = 2;
const TX_ACCOUNT_ID = 6;
const TX_VEHICLE_CLASS = 7;
const TX_AMOUNT_MINOR = 8;
const TX_CURRENCY = 9;
const TX_OCCURRED_AT = 10;
const TIMESTAMP_SECONDS = 1;
const TIMESTAMP_NANOS = 2;

/**
 * Reads a serialized TransactionBatch and calls `visit` for each record, decoding only the fields
 * windows use. Throws on malformed input, like the generated decoder (the caller dead-letters it).
 * Checked against the generated decoder by a property test.
 */
export function readTransactionBatch(data: Uint8Array, visit: (record: WindowedRecord) => void): void {
  const reader = new BinaryReader(data);
  let start = 0;
  let end = 0;
  const record: WindowedRecord = {
    stationId: '',
    accountId: '',
    currency: '',
    vehicleClass: 0,
    amountMinor: 0,
    occurredAtMs: Number.NaN,
    encoded: () => data.subarray(start, end),
  };
  while (reader.pos < reader.len) {
    // Tags read as numbers: reader.tag() allocates a pair per field.
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wireType = (tag & 7) as WireType;
    if (field !== BATCH_TRANSACTIONS || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, field);
      continue;
    }
    const length = reader.uint32();
    start = reader.pos;
    end = start + length;
    if (end > reader.len) throw new RangeError('premature end of a TransactionBatch');
    record.stationId = '';
    record.accountId = '';
    record.currency = '';
    record.vehicleClass = 0;
    record.amountMinor = 0;
    record.occurredAtMs = Number.NaN;
    let hasTransaction = false;
    while (reader.pos < end) {
      const ingestedTag = reader.uint32();
      const ingestedField = ingestedTag >>> 3;
      const ingestedWire = (ingestedTag & 7) as WireType;
      if (ingestedField === INGESTED_TRANSACTION && ingestedWire === WireType.LengthDelimited) {
        hasTransaction = true;
        const transactionLength = reader.uint32(); // read before taking pos: the length's own bytes
        readTollTransaction(reader, reader.pos + transactionLength, record);
      } else {
        reader.skip(ingestedWire, ingestedField);
      }
    }
    if (reader.pos !== end) throw new RangeError('malformed IngestedTransaction');
    if (!hasTransaction) continue;
    visit(record);
  }
}

function readTollTransaction(reader: BinaryReader, end: number, record: WindowedRecord): void {
  while (reader.pos < end) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wireType = (tag & 7) as WireType;
    switch (field) {
      case TX_STATION_ID:
        if (wireType !== WireType.LengthDelimited) break;
        record.stationId = reader.string();
        continue;
      case TX_ACCOUNT_ID:
        if (wireType !== WireType.LengthDelimited) break;
        record.accountId = reader.string();
        continue;
      case TX_VEHICLE_CLASS:
        if (wireType !== WireType.Varint) break;
        record.vehicleClass = reader.int32();
        continue;
      case TX_AMOUNT_MINOR:
        if (wireType !== WireType.Varint) break;
        record.amountMinor = Number(reader.int64());
        continue;
      case TX_CURRENCY:
        if (wireType !== WireType.LengthDelimited) break;
        record.currency = reader.string();
        continue;
      case TX_OCCURRED_AT:
        if (wireType !== WireType.LengthDelimited) break;
        {
          const timestampLength = reader.uint32();
          record.occurredAtMs = readTimestampMs(reader, reader.pos + timestampLength);
        }
        continue;
    }
    reader.skip(wireType, field);
  }
  if (reader.pos !== end) throw new RangeError('malformed TollTransaction');
}

function readTimestampMs(reader: BinaryReader, end: number): number {
  let seconds = 0;
  let nanos = 0;
  while (reader.pos < end) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wireType = (tag & 7) as WireType;
    if (field === TIMESTAMP_SECONDS && wireType === WireType.Varint) seconds = Number(reader.int64());
    else if (field === TIMESTAMP_NANOS && wireType === WireType.Varint) nanos = reader.int32();
    else reader.skip(wireType, field);
  }
  if (reader.pos !== end) throw new RangeError('malformed Timestamp');
  // As the generated decoder's Date: milliseconds truncated toward zero.
  return Math.trunc(seconds * 1_000 + nanos / 1_000_000);
}
