import { BinaryReader } from '@bufbuild/protobuf/wire';
import { IngestedTransaction } from '@tollstream/contracts';
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

/**
 * The TabSeparated rows of `spend_windows` straight from a serialized CustomerSpendBatch
 * (tolls.agg.spend.<shard>), without the generated decoder: with 1-second windows there is about one
 * spend window per transaction, so this path is as hot as the raw transactions (transaction-tsv.ts,
 * docs/adr/0007-warehouse-exactly-once.md).
 *
 * It only handles the common case exactly as `spendWindowRows(CustomerSpendBatch.decode(data), seq)`
 * would store it: it returns undefined for anything else (malformed input the decoder would refuse or
 * read differently, invalid UTF-8, a negative or unsafe integer, a source partition beyond UInt16, an
 * instant between the epoch and 2001-09-09 or from 2286-11-20 on, a window timestamp given twice), and the caller then takes
 * the decoder's path. Checked against that path by tests, down to what the engine stores.
 */
export interface SpendWindowTsv {
  /** Every window as one TabSeparated line ending with '\n', in message order. */
  body: Buffer;
  rowCount: number;
}

// Field numbers: tolls.stream.v1.CustomerSpendBatch.
const BATCH_ID = 1;
const BATCH_SOURCE_PARTITION = 2;
const BATCH_INPUT_SEQUENCE = 3;
const BATCH_WATERMARK = 4;
const BATCH_WINDOWS = 5;
const BATCH_CHUNK = 6;
const BATCH_PREVIOUS_INPUT_SEQUENCE = 7;
const BATCH_PREVIOUS_CHUNK = 8;
const BATCH_FINAL_BEFORE = 9;
const BATCH_LATE_TRANSACTIONS = 10;
// tolls.stream.v1.CustomerSpendWindow.
const RESULT_ID = 1;
const ACCOUNT_ID = 2;
const CURRENCY = 3;
const WINDOW_START = 4;
const WINDOW_END = 5;
const AMOUNT_MINOR = 6;
const TRANSACTION_COUNT = 7;
const REVISION = 8;
const SOURCE_PARTITION = 9;
const LAST_OCCURRED_AT = 10;

/** The spend_windows.source_partition column is a UInt16. */
const MAX_SOURCE_PARTITION = 0xffff;
/** timestampText of a missing time or one at or before the epoch. */
const EPOCH_TEXT = '1970-01-01 00:00:00.000';
const NO_TIME = -1;
/**
 * The engine reads Unix seconds of ten digits at most (from 2286-11-20 on it refuses the insert:
 * "unexpected number of decimal digits: 11", measured): such an instant goes the decoder's way, so
 * that the two formats need not fail alike.
 */
const UNIX_SECONDS_END_MS = 1e13;

/** The rows when the caller gives no buffer (then copied out), and the message's row tail. */
const scratch = new TsvBuffer();
const tail = new TsvBuffer(256);

/**
 * TabSeparated rows of `spend_windows` (column order of `spendWindowColumns`) from one
 * tolls.agg.spend.<shard> message, or undefined when the generated decoder's path must handle it.
 * With `into` (the loader: one buffer per batch), the rows are appended to it and `body` is a view of
 * them, no copy; a declined message leaves `into` as it was. Without, `body` is a Buffer of its own.
 */
export function spendWindowTsv(data: Uint8Array, streamSequence: number, into?: TsvBuffer): SpendWindowTsv | undefined {
  const out = into ?? scratch;
  const start = out.length;
  const rowCount = fastPath(out, () => readRows(data, streamSequence, out));
  if (rowCount === undefined) return undefined;
  const body = into ? out.view(start) : Buffer.from(out.view(start));
  if (!into) scratch.reset();
  return { body, rowCount };
}

/**
 * A top-level Timestamp the rows do not use (watermark, final_before): only checked to decode as the
 * generated decoder would decode it.
 */
function checkTimestamp(cursor: Cursor, end: number): void {
  timestampMs(cursor, delimitedEnd(cursor, end));
}

/**
 * A late transaction the rows do not use (it is in TOLL_TX too), checked with the generated decoder
 * itself: the batch's decoder reads it, so one it refuses or stops reading early (a tag 0) is the
 * decoder path's case. Rare: the generated decoder's cost does not matter here.
 */
function checkLateTransaction(cursor: Cursor, end: number): void {
  const recordEnd = delimitedEnd(cursor, end);
  const reader = new BinaryReader(cursor.data.subarray(cursor.pos, recordEnd));
  try {
    IngestedTransaction.decode(reader, reader.len);
  } catch {
    throw notHandled;
  }
  if (reader.pos !== reader.len) throw notHandled;
  cursor.pos = recordEnd;
}

/** timestampText of the instant, for the ones the fast path takes. */
function writeTimestamp(out: TsvBuffer, ms: number): void {
  if (ms === NO_TIME || ms === 0) out.ascii(EPOCH_TEXT);
  else if (ms >= 1e12 && ms < UNIX_SECONDS_END_MS) out.unixSeconds(ms);
  else throw notHandled; // as "YYYY-MM-DD hh:mm:ss.sss" or an invalid Date: the decoder path's case
}

/** Appends the rows to `out`; their number. */
function readRows(data: Uint8Array, streamSequence: number, out: TsvBuffer): number {
  const cursor: Cursor = { data, pos: 0 };
  const len = data.length;
  // First pass: batch_id and input_sequence (the last occurrence wins, as in the decoder) and the
  // fields the rows do not use, checked as the decoder would read them.
  let batchStart = 0;
  let batchEnd = 0;
  let inputSequence = 0;
  let windows = 0;
  while (cursor.pos < len) {
    const fieldTag = tag(cursor, len);
    const field = fieldTag >>> 3;
    const wireType = fieldTag & 7;
    if (wireType === LENGTH_DELIMITED) {
      if (field === BATCH_ID) {
        batchEnd = delimitedEnd(cursor, len);
        batchStart = cursor.pos;
        cursor.pos = batchEnd;
      } else if (field === BATCH_WATERMARK || field === BATCH_FINAL_BEFORE) {
        checkTimestamp(cursor, len);
      } else if (field === BATCH_LATE_TRANSACTIONS) {
        checkLateTransaction(cursor, len);
      } else {
        if (field === BATCH_WINDOWS) windows++;
        skip(cursor, wireType, len);
      }
    } else if (wireType === VARINT && field === BATCH_INPUT_SEQUENCE) {
      inputSequence = varint(cursor, len);
    } else if (wireType === VARINT && field === BATCH_PREVIOUS_INPUT_SEQUENCE) {
      varint(cursor, len); // a uint64 beyond 2^53 - 1 fails the decoder
    } else if (wireType === VARINT && (field === BATCH_SOURCE_PARTITION || field === BATCH_CHUNK || field === BATCH_PREVIOUS_CHUNK)) {
      uint32(cursor, len);
    } else {
      skip(cursor, wireType, len);
    }
  }
  if (windows === 0) return 0;
  // Per-message tail of every row, "\t<batch_id>\t<input_sequence>\t<stream_sequence>\n", appended
  // after each row.
  tail.reset();
  tail.byte(TAB);
  tail.field(data, batchStart, batchEnd);
  tail.byte(TAB);
  tail.integer(inputSequence);
  tail.byte(TAB);
  tail.integer(streamSequence);
  tail.byte(NEWLINE);

  let rowCount = 0;
  cursor.pos = 0;
  for (let windowEnd = nextDelimited(cursor, len, BATCH_WINDOWS); windowEnd >= 0; windowEnd = nextDelimited(cursor, len, BATCH_WINDOWS)) {
    let resultStart = 0;
    let resultEnd = 0;
    let accountStart = 0;
    let accountEnd = 0;
    let currencyStart = 0;
    let currencyEnd = 0;
    let startMs = NO_TIME;
    let endMs = NO_TIME;
    let lastOccurredMs = NO_TIME;
    let amountMinor = 0;
    let transactionCount = 0;
    let revision = 0;
    let sourcePartition = 0;
    while (cursor.pos < windowEnd) {
      const windowTag = tag(cursor, windowEnd);
      const field = windowTag >>> 3;
      const wireType = windowTag & 7;
      if (wireType === LENGTH_DELIMITED && field >= RESULT_ID && field <= CURRENCY) {
        // Strings: the last one wins, as in the decoder.
        const end = delimitedEnd(cursor, windowEnd);
        if (field === RESULT_ID) {
          resultStart = cursor.pos;
          resultEnd = end;
        } else if (field === ACCOUNT_ID) {
          accountStart = cursor.pos;
          accountEnd = end;
        } else {
          currencyStart = cursor.pos;
          currencyEnd = end;
        }
        cursor.pos = end;
      } else if (wireType === LENGTH_DELIMITED && (field === WINDOW_START || field === WINDOW_END || field === LAST_OCCURRED_AT)) {
        // The decoder keeps the last one; given twice is not worth handling here.
        const ms = timestampMs(cursor, delimitedEnd(cursor, windowEnd));
        if (field === WINDOW_START && startMs === NO_TIME) startMs = ms;
        else if (field === WINDOW_END && endMs === NO_TIME) endMs = ms;
        else if (field === LAST_OCCURRED_AT && lastOccurredMs === NO_TIME) lastOccurredMs = ms;
        else throw notHandled;
      } else if (wireType === VARINT && field === AMOUNT_MINOR) {
        amountMinor = varint(cursor, windowEnd);
      } else if (wireType === VARINT && field === TRANSACTION_COUNT) {
        transactionCount = uint32(cursor, windowEnd);
      } else if (wireType === VARINT && field === REVISION) {
        revision = uint32(cursor, windowEnd);
      } else if (wireType === VARINT && field === SOURCE_PARTITION) {
        sourcePartition = uint32(cursor, windowEnd);
        if (sourcePartition > MAX_SOURCE_PARTITION) throw notHandled;
      } else {
        skip(cursor, wireType, windowEnd);
      }
    }
    if (cursor.pos !== windowEnd) throw notHandled;
    out.field(data, accountStart, accountEnd);
    out.byte(TAB);
    out.field(data, currencyStart, currencyEnd);
    out.byte(TAB);
    writeTimestamp(out, startMs);
    out.byte(TAB);
    writeTimestamp(out, endMs);
    out.byte(TAB);
    out.integer(sourcePartition);
    out.byte(TAB);
    out.integer(revision);
    out.byte(TAB);
    out.field(data, resultStart, resultEnd);
    out.byte(TAB);
    out.integer(amountMinor);
    out.byte(TAB);
    out.integer(transactionCount);
    out.byte(TAB);
    writeTimestamp(out, lastOccurredMs);
    out.append(tail);
    rowCount++;
  }
  return rowCount;
}
