import {
  delimitedEnd,
  fastPath,
  LENGTH_DELIMITED,
  NEWLINE,
  nextDelimited,
  notHandled,
  skip,
  TAB,
  tag,
  timestampMs,
  TsvBuffer,
  uint32,
  varint,
  VARINT,
  type Cursor,
} from './protobuf-wire';
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

const classNames: string[] = Array.from({ length: 16 }, (_unused, n) => vehicleClassName(n));

/** The rows when the caller gives no buffer (then copied out), and the message's row tail. */
const scratch = new TsvBuffer();
const tail = new TsvBuffer(256);
/** Where the string fields of the record being read are (by field number); reset per record. */
const stringStart = new Int32Array(TX_STRING_FIELDS + 1);
const stringEnd = new Int32Array(TX_STRING_FIELDS + 1);

/**
 * TabSeparated rows of `transactions` (column order of `transactionColumns`) from one TOLL_TX message,
 * or undefined when the generated decoder's path must handle it (see above). With `into` (the loader:
 * one buffer per batch), the rows are appended to it and `body` is a view of them, no copy; a
 * declined message leaves `into` as it was. Without, `body` is a Buffer of its own.
 */
export function transactionTsv(data: Uint8Array, streamSequence: number, into?: TsvBuffer): TransactionTsv | undefined {
  const out = into ?? scratch;
  const start = out.length;
  const read = fastPath(out, () => readRows(data, streamSequence, out));
  if (!read) return undefined;
  const body = into ? out.view(start) : Buffer.from(out.view(start));
  if (!into) scratch.reset();
  return { body, rowCount: read.rowCount, oldestIngestedAtMs: read.oldestIngestedAtMs };
}

function readRows(data: Uint8Array, streamSequence: number, out: TsvBuffer): { rowCount: number; oldestIngestedAtMs: number } {
  const cursor: Cursor = { data, pos: 0 };
  const len = data.length;
  // First pass: batch_id (it may come after the records); the last occurrence wins, as in the decoder.
  let batchStart = 0;
  let batchEnd = 0;
  let records = 0;
  while (cursor.pos < len) {
    const fieldTag = tag(cursor, len);
    const field = fieldTag >>> 3;
    const wireType = fieldTag & 7;
    if (field === BATCH_ID && wireType === LENGTH_DELIMITED) {
      batchEnd = delimitedEnd(cursor, len);
      batchStart = cursor.pos;
      cursor.pos = batchEnd;
    } else {
      if (field === BATCH_TRANSACTIONS && wireType === LENGTH_DELIMITED) records++;
      skip(cursor, wireType, len);
    }
  }
  if (records === 0) return { rowCount: 0, oldestIngestedAtMs: Number.NaN };
  // Per-message tail of every row, "\t<stream_sequence>\t<batch_id>\n", appended after each row.
  tail.reset();
  tail.byte(TAB);
  tail.integer(streamSequence);
  tail.byte(TAB);
  tail.field(data, batchStart, batchEnd);
  tail.byte(NEWLINE);

  // The ingestor gives all records of a message one ingested_at: its text is written once and copied.
  let ingestedTextMs = Number.NaN;
  let ingestedTextAt = 0;
  let ingestedTextLength = 0;
  let oldest = Number.NaN;
  let rowCount = 0;
  cursor.pos = 0;
  for (let recordEnd = nextDelimited(cursor, len, BATCH_TRANSACTIONS); recordEnd >= 0; recordEnd = nextDelimited(cursor, len, BATCH_TRANSACTIONS)) {
    let hasTransaction = false;
    let ingestedAtMs = Number.NaN;
    let partition = 0;
    let vehicleClass = 0;
    let amountMinor = 0;
    let occurredAtMs = Number.NaN;
    let currencyStart = 0;
    let currencyEnd = 0;
    while (cursor.pos < recordEnd) {
      const recordTag = tag(cursor, recordEnd);
      const recordField = recordTag >>> 3;
      const recordWire = recordTag & 7;
      if (recordField === INGESTED_TRANSACTION && recordWire === LENGTH_DELIMITED) {
        // A repeated sub-message would be merged by the decoder: not handled here.
        if (hasTransaction) throw notHandled;
        hasTransaction = true;
        const txEnd = delimitedEnd(cursor, recordEnd);
        for (let f = 1; f <= TX_STRING_FIELDS; f++) {
          stringStart[f] = 0;
          stringEnd[f] = 0;
        }
        while (cursor.pos < txEnd) {
          const txTag = tag(cursor, txEnd);
          const txField = txTag >>> 3;
          const txWire = txTag & 7;
          if (txField >= 1 && txField <= TX_STRING_FIELDS && txWire === LENGTH_DELIMITED) {
            stringEnd[txField] = delimitedEnd(cursor, txEnd);
            stringStart[txField] = cursor.pos;
            cursor.pos = stringEnd[txField];
          } else if (txField === TX_VEHICLE_CLASS && txWire === VARINT) {
            vehicleClass = varint(cursor, txEnd);
            if (vehicleClass > 0x7fffffff) throw notHandled; // the decoder reads an int32
          } else if (txField === TX_AMOUNT_MINOR && txWire === VARINT) {
            amountMinor = varint(cursor, txEnd);
          } else if (txField === TX_CURRENCY && txWire === LENGTH_DELIMITED) {
            currencyEnd = delimitedEnd(cursor, txEnd);
            currencyStart = cursor.pos;
            cursor.pos = currencyEnd;
          } else if (txField === TX_OCCURRED_AT && txWire === LENGTH_DELIMITED) {
            if (!Number.isNaN(occurredAtMs)) throw notHandled;
            occurredAtMs = timestampMs(cursor, delimitedEnd(cursor, txEnd));
          } else {
            skip(cursor, txWire, txEnd);
          }
        }
        if (cursor.pos !== txEnd) throw notHandled;
      } else if (recordField === INGESTED_AT && recordWire === LENGTH_DELIMITED) {
        if (!Number.isNaN(ingestedAtMs)) throw notHandled;
        ingestedAtMs = timestampMs(cursor, delimitedEnd(cursor, recordEnd));
      } else if (recordField === INGESTED_PARTITION && recordWire === VARINT) {
        partition = uint32(cursor, recordEnd);
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
    out.field(data, stringStart[2], stringEnd[2]);
    out.byte(TAB);
    for (let f = 1; f <= TX_STRING_FIELDS; f++) {
      if (f === 2) continue;
      out.field(data, stringStart[f], stringEnd[f]);
      out.byte(TAB);
    }
    out.ascii(vehicleClass < classNames.length ? classNames[vehicleClass] : vehicleClassName(vehicleClass));
    out.byte(TAB);
    out.integer(amountMinor);
    out.byte(TAB);
    out.field(data, currencyStart, currencyEnd);
    out.byte(TAB);
    out.unixSeconds(occurredAtMs);
    out.byte(TAB);
    if (ingestedAtMs === ingestedTextMs) {
      out.repeat(ingestedTextAt, ingestedTextLength);
    } else {
      ingestedTextMs = ingestedAtMs;
      ingestedTextAt = out.length;
      out.unixSeconds(ingestedAtMs);
      ingestedTextLength = out.length - ingestedTextAt;
    }
    out.byte(TAB);
    out.integer(partition);
    out.append(tail);
    rowCount++;
  }
  return { rowCount, oldestIngestedAtMs: oldest };
}
