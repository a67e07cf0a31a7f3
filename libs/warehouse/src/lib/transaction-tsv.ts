import { isUtf8 } from 'node:buffer';
import { vehicleClassName } from './rows';

/**
 * The TabSeparated rows of `transactions` straight from a serialized TOLL_TX TransactionBatch,
 * without the generated decoder: string fields are copied byte for byte from the protobuf (both are
 * UTF-8; TabSeparated escaping only touches ASCII bytes), numbers and timestamps are written as text.
 * Measured on 200,000 rows: the generated decoder plus `transactionRows` plus `join` took about 1.1 s
 * of the loader's main thread, this about a tenth of that, and the result is a Buffer the engine
 * takes without a UTF-8 conversion (docs/adr/0007-warehouse-exactly-once.md).
 *
 * It only handles the common case exactly as `transactionRows(TransactionBatch.decode(data), seq)`
 * would: it returns undefined for anything else (malformed input, a record `transactionRows` would
 * dead-letter, invalid UTF-8, a negative or unsafe integer, an instant before 2001-09-09, a field
 * repeated in a way that needs merge semantics), and the caller then takes the generated decoder's
 * path, which dead-letters or maps as before. Checked against that path by tests.
 */
export interface TransactionTsv {
  /** Every row as one TabSeparated line ending with '\n', in record order. */
  body: Buffer;
  rowCount: number;
  /** Oldest ingested_at of the rows, epoch ms (NaN when there are none). */
  oldestIngestedAtMs: number;
}

// Field numbers: tolls.stream.v1.TransactionBatch / IngestedTransaction, tolls.ingest.v1.TollTransaction,
// google.protobuf.Timestamp.
const BATCH_ID = 1;
const BATCH_TRANSACTIONS = 2;
const INGESTED_TRANSACTION = 1;
const INGESTED_AT = 2;
const INGESTED_PARTITION = 3;
const TX_STRING_FIELDS = 6; // fields 1..6: transaction_id, station_id, lane_id, tag_id, plate, account_id
const TX_VEHICLE_CLASS = 7;
const TX_AMOUNT_MINOR = 8;
const TX_CURRENCY = 9;
const TX_OCCURRED_AT = 10;

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

const TAB = 0x09;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;

/** Thrown inside the reader for anything the fast path does not take; never escapes this module. */
class NotHandled extends Error {}
const notHandled = new NotHandled('not handled by the fast path');

const classNames: string[] = Array.from({ length: 16 }, (_unused, n) => vehicleClassName(n));

/** Cursor over the input bytes. */
interface Cursor {
  data: Uint8Array;
  pos: number;
}

/** A varint up to 2^53 - 1 (a larger or negative int64 is not handled). */
function varint(cursor: Cursor, end: number): number {
  const { data } = cursor;
  let result = 0;
  let multiplier = 1;
  for (let shift = 0; shift < 53; shift += 7) {
    if (cursor.pos >= end) throw notHandled;
    const byte = data[cursor.pos++];
    result += (byte & 0x7f) * multiplier;
    if (byte < 0x80) {
      if (result > Number.MAX_SAFE_INTEGER) throw notHandled;
      return result;
    }
    multiplier *= 128;
  }
  throw notHandled;
}

function skip(cursor: Cursor, wireType: number, end: number): void {
  switch (wireType) {
    case VARINT:
      while (cursor.pos < end && cursor.data[cursor.pos++] >= 0x80) {
        // continuation bytes
      }
      return;
    case FIXED64:
      cursor.pos += 8;
      break;
    case LENGTH_DELIMITED: {
      const length = varint(cursor, end);
      cursor.pos += length;
      break;
    }
    case FIXED32:
      cursor.pos += 4;
      break;
    default:
      throw notHandled; // groups and invalid wire types: the generated decoder decides
  }
  if (cursor.pos > end) throw notHandled;
}

/** Epoch ms of a google.protobuf.Timestamp, as the generated decoder's Date would give it. */
function timestampMs(cursor: Cursor, end: number): number {
  let seconds = 0;
  let nanos = 0;
  while (cursor.pos < end) {
    const tag = varint(cursor, end);
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === 1 && wireType === VARINT) seconds = varint(cursor, end);
    else if (field === 2 && wireType === VARINT) nanos = varint(cursor, end);
    else skip(cursor, wireType, end);
  }
  if (cursor.pos !== end || nanos > 0x7fffffff) throw notHandled;
  return Math.trunc(seconds * 1_000 + nanos / 1_000_000);
}

/** Growable output buffer, reused across calls (the result is copied out). */
let scratch = Buffer.allocUnsafe(1 << 20);
let out = 0;

function ensure(bytes: number): void {
  if (out + bytes <= scratch.length) return;
  let size = scratch.length * 2;
  while (size < out + bytes) size *= 2;
  const bigger = Buffer.allocUnsafe(size);
  scratch.copy(bigger, 0, 0, out);
  scratch = bigger;
}

/**
 * Copies data[start, end) as a TabSeparated field (escaping \\ \t \n \r \0). A field with
 * non-ASCII bytes must be valid UTF-8 for the copy to equal what the decoder reads (it would replace
 * invalid sequences).
 */
function copyField(data: Uint8Array, start: number, end: number): void {
  ensure((end - start) * 2 + 1); // + the separator the caller writes next
  let high = 0;
  for (let i = start; i < end; i++) {
    const byte = data[i];
    high |= byte;
    if (byte === BACKSLASH || byte === TAB || byte === NEWLINE || byte === 0x0d || byte === 0) {
      scratch[out++] = BACKSLASH;
      scratch[out++] = byte === BACKSLASH ? BACKSLASH : byte === TAB ? 0x74 : byte === NEWLINE ? 0x6e : byte === 0x0d ? 0x72 : 0x30;
    } else {
      scratch[out++] = byte;
    }
  }
  if (high >= 0x80 && !isUtf8(data.subarray(start, end))) throw notHandled;
}

/** A short ASCII text (numbers, class names): a loop beats Buffer#write's native call at this length. */
function writeAscii(text: string): void {
  ensure(text.length);
  for (let i = 0; i < text.length; i++) scratch[out++] = text.charCodeAt(i);
}

/**
 * TabSeparated rows of `transactions` (column order of `transactionColumns`) from one TOLL_TX message,
 * or undefined when the generated decoder's path must handle it (see above).
 */
export function transactionTsv(data: Uint8Array, streamSequence: number): TransactionTsv | undefined {
  try {
    return read(data, streamSequence);
  } catch (error) {
    if (error instanceof NotHandled || error instanceof RangeError) return undefined;
    throw error;
  }
}

function read(data: Uint8Array, streamSequence: number): TransactionTsv {
  const cursor: Cursor = { data, pos: 0 };
  const len = data.length;
  // First pass: batch_id (it may come after the records); the last occurrence wins, as in the decoder.
  let batchStart = 0;
  let batchEnd = 0;
  let records = 0;
  while (cursor.pos < len) {
    const tag = varint(cursor, len);
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === BATCH_ID && wireType === LENGTH_DELIMITED) {
      const length = varint(cursor, len);
      batchStart = cursor.pos;
      batchEnd = batchStart + length;
      cursor.pos = batchEnd;
      if (batchEnd > len) throw notHandled;
    } else {
      if (field === BATCH_TRANSACTIONS && wireType === LENGTH_DELIMITED) records++;
      skip(cursor, wireType, len);
    }
  }
  out = 0;
  if (records === 0) return { body: Buffer.alloc(0), rowCount: 0, oldestIngestedAtMs: Number.NaN };
  // Per-message tail of every row: "\t<stream_sequence>\t<batch_id>\n".
  writeAscii(`\t${streamSequence}\t`);
  copyField(data, batchStart, batchEnd);
  scratch[out++] = NEWLINE;
  const tail = Buffer.from(scratch.subarray(0, out));
  out = 0;

  const stringStart = new Int32Array(TX_STRING_FIELDS + 1);
  const stringEnd = new Int32Array(TX_STRING_FIELDS + 1);
  let oldest = Number.NaN;
  let rowCount = 0;
  cursor.pos = 0;
  while (cursor.pos < len) {
    const tag = varint(cursor, len);
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field !== BATCH_TRANSACTIONS || wireType !== LENGTH_DELIMITED) {
      skip(cursor, wireType, len);
      continue;
    }
    const recordEnd = varint(cursor, len) + cursor.pos;
    if (recordEnd > len) throw notHandled;
    let hasTransaction = false;
    let ingestedAtMs = Number.NaN;
    let partition = 0;
    let vehicleClass = 0;
    let amountMinor = 0;
    let occurredAtMs = Number.NaN;
    let currencyStart = 0;
    let currencyEnd = 0;
    while (cursor.pos < recordEnd) {
      const recordTag = varint(cursor, recordEnd);
      const recordField = recordTag >>> 3;
      const recordWire = recordTag & 7;
      if (recordField === INGESTED_TRANSACTION && recordWire === LENGTH_DELIMITED) {
        // A repeated sub-message would be merged by the decoder: not handled here.
        if (hasTransaction) throw notHandled;
        hasTransaction = true;
        const txEnd = varint(cursor, recordEnd) + cursor.pos;
        if (txEnd > recordEnd) throw notHandled;
        stringStart.fill(0);
        stringEnd.fill(0);
        while (cursor.pos < txEnd) {
          const txTag = varint(cursor, txEnd);
          const txField = txTag >>> 3;
          const txWire = txTag & 7;
          if (txField >= 1 && txField <= TX_STRING_FIELDS && txWire === LENGTH_DELIMITED) {
            const length = varint(cursor, txEnd);
            stringStart[txField] = cursor.pos;
            stringEnd[txField] = cursor.pos + length;
            cursor.pos += length;
            if (cursor.pos > txEnd) throw notHandled;
          } else if (txField === TX_VEHICLE_CLASS && txWire === VARINT) {
            vehicleClass = varint(cursor, txEnd);
            if (vehicleClass > 0x7fffffff) throw notHandled; // the decoder reads an int32
          } else if (txField === TX_AMOUNT_MINOR && txWire === VARINT) {
            amountMinor = varint(cursor, txEnd);
          } else if (txField === TX_CURRENCY && txWire === LENGTH_DELIMITED) {
            const length = varint(cursor, txEnd);
            currencyStart = cursor.pos;
            currencyEnd = cursor.pos + length;
            cursor.pos += length;
            if (cursor.pos > txEnd) throw notHandled;
          } else if (txField === TX_OCCURRED_AT && txWire === LENGTH_DELIMITED) {
            if (!Number.isNaN(occurredAtMs)) throw notHandled;
            const end = varint(cursor, txEnd) + cursor.pos;
            if (end > txEnd) throw notHandled;
            occurredAtMs = timestampMs(cursor, end);
          } else {
            skip(cursor, txWire, txEnd);
          }
        }
        if (cursor.pos !== txEnd) throw notHandled;
      } else if (recordField === INGESTED_AT && recordWire === LENGTH_DELIMITED) {
        if (!Number.isNaN(ingestedAtMs)) throw notHandled;
        const end = varint(cursor, recordEnd) + cursor.pos;
        if (end > recordEnd) throw notHandled;
        ingestedAtMs = timestampMs(cursor, end);
      } else if (recordField === INGESTED_PARTITION && recordWire === VARINT) {
        partition = varint(cursor, recordEnd);
        if (partition > 0xffffffff) throw notHandled;
      } else {
        skip(cursor, recordWire, recordEnd);
      }
    }
    if (cursor.pos !== recordEnd) throw notHandled;
    // What transactionRows would dead-letter (or write as text) goes the generated decoder's way.
    if (!hasTransaction || stringEnd[1] === stringStart[1] || stringEnd[2] === stringStart[2]) throw notHandled;
    if (!(occurredAtMs >= 1e12 && occurredAtMs < 8.64e15 && ingestedAtMs >= 1e12 && ingestedAtMs < 8.64e15)) throw notHandled;
    if (!(ingestedAtMs >= oldest)) oldest = ingestedAtMs;
    // station_id, transaction_id, lane_id, tag_id, plate, account_id (field numbers 2, 1, 3, 4, 5, 6).
    copyField(data, stringStart[2], stringEnd[2]);
    scratch[out++] = TAB;
    for (let f = 1; f <= TX_STRING_FIELDS; f++) {
      if (f === 2) continue;
      copyField(data, stringStart[f], stringEnd[f]);
      scratch[out++] = TAB;
    }
    writeAscii(`${vehicleClass < classNames.length ? classNames[vehicleClass] : vehicleClassName(vehicleClass)}\t${amountMinor}\t`);
    copyField(data, currencyStart, currencyEnd);
    // As timestampText for instants from 2001-09-09 on: Unix seconds with milliseconds.
    writeAscii(`\t${occurredAtMs / 1000}\t${ingestedAtMs / 1000}\t${partition}`);
    ensure(tail.length);
    out += tail.copy(scratch, out);
    rowCount++;
  }
  const body = Buffer.from(scratch.subarray(0, out));
  out = 0;
  if (scratch.length > 1 << 24) scratch = Buffer.allocUnsafe(1 << 20);
  return { body, rowCount, oldestIngestedAtMs: oldest };
}

