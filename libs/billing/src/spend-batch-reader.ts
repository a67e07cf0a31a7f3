import { CustomerSpendBatch, IngestedTransaction } from '@tollstream/contracts';

/**
 * A customer-spend window result as billing applies it: the fields of `CustomerSpendWindow` that
 * billing reads, with instants as epoch milliseconds (undefined when absent, NaN when out of the
 * range a JavaScript Date holds: exactly what the generated decoder's `Date#getTime()` would give).
 */
export interface SpendWindowInput {
  accountId: string;
  currency: string;
  windowStartMs: number | undefined;
  windowEndMs: number | undefined;
  amountMinor: number;
  transactionCount: number;
  revision: number;
  lastOccurredAtMs: number | undefined;
  /** Where the window's bytes are in the batch's `data` (for a dead letter: the window as it came). */
  byteStart: number;
  byteEnd: number;
}

/** A `CustomerSpendBatch` as billing applies it (ADR 0013), read straight from its bytes. */
export interface SpendBatchInput {
  /** The serialized batch (kept for a held batch's snapshot and for dead letters). */
  data: Uint8Array;
  sourcePartition: number;
  inputSequence: number;
  chunk: number;
  previousInputSequence: number | undefined;
  previousChunk: number | undefined;
  finalBeforeMs: number | undefined;
  windows: SpendWindowInput[];
  lateTransactions: IngestedTransaction[];
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;
/** The largest instant a Date holds (ECMAScript TimeClip). */
const MAX_DATE_MS = 8.64e15;

/** A malformed message: billing dead-letters it as UNDECODABLE with this text. */
export class SpendBatchDecodeError extends Error {}

/**
 * Reads a `CustomerSpendBatch` from its bytes without the generated decoder's objects: no
 * `Timestamp` and `Date` per instant, no `result_id`/`batch_id` strings, int64 without a string
 * round trip. Billing applies about one window per transaction, so this is its hottest path
 * (ADR 0013, "Measured"). Values are those the generated decoder gives (same defaults, last value
 * of a repeated scalar or timestamp wins, out-of-safe-range 64-bit integers are refused), which
 * the tests check against `CustomerSpendBatch.decode` on generated batches.
 */
export function readSpendBatch(data: Uint8Array): SpendBatchInput {
  const reader = new WireReader(data);
  const batch: SpendBatchInput = {
    data,
    sourcePartition: 0,
    inputSequence: 0,
    chunk: 0,
    previousInputSequence: undefined,
    previousChunk: undefined,
    finalBeforeMs: undefined,
    windows: [],
    lateTransactions: [],
  };
  const end = data.length;
  while (reader.pos < end) {
    const tag = reader.uint32();
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 2:
        if (wireType !== VARINT) break;
        batch.sourcePartition = reader.uint32();
        continue;
      case 3:
        if (wireType !== VARINT) break;
        batch.inputSequence = reader.uint64();
        continue;
      case 5:
        if (wireType !== LENGTH_DELIMITED) break;
        batch.windows.push(readWindow(reader));
        continue;
      case 6:
        if (wireType !== VARINT) break;
        batch.chunk = reader.uint32();
        continue;
      case 7:
        if (wireType !== VARINT) break;
        batch.previousInputSequence = reader.uint64();
        continue;
      case 8:
        if (wireType !== VARINT) break;
        batch.previousChunk = reader.uint32();
        continue;
      case 9:
        if (wireType !== LENGTH_DELIMITED) break;
        batch.finalBeforeMs = reader.timestampMs();
        continue;
      case 10: {
        if (wireType !== LENGTH_DELIMITED) break;
        const length = reader.length();
        // Rare (transactions too late for any window): the generated decoder is fine here.
        batch.lateTransactions.push(IngestedTransaction.decode(data.subarray(reader.pos, reader.pos + length)));
        reader.pos += length;
        continue;
      }
    }
    reader.skip(wireType);
  }
  return batch;
}

/** The same input from a decoded batch (tests, and anything that holds a `CustomerSpendBatch`). */
export function spendBatchInputOf(batch: CustomerSpendBatch): SpendBatchInput {
  return readSpendBatch(CustomerSpendBatch.encode(batch).finish());
}

function readWindow(reader: WireReader): SpendWindowInput {
  const length = reader.length();
  const byteStart = reader.pos;
  const end = byteStart + length;
  const window: SpendWindowInput = {
    accountId: '',
    currency: '',
    windowStartMs: undefined,
    windowEndMs: undefined,
    amountMinor: 0,
    transactionCount: 0,
    revision: 0,
    lastOccurredAtMs: undefined,
    byteStart,
    byteEnd: end,
  };
  while (reader.pos < end) {
    const tag = reader.uint32();
    const wireType = tag & 7;
    switch (tag >>> 3) {
      case 2:
        if (wireType !== LENGTH_DELIMITED) break;
        window.accountId = reader.string();
        continue;
      case 3:
        if (wireType !== LENGTH_DELIMITED) break;
        window.currency = reader.currency();
        continue;
      case 4:
        if (wireType !== LENGTH_DELIMITED) break;
        window.windowStartMs = reader.timestampMs();
        continue;
      case 5:
        if (wireType !== LENGTH_DELIMITED) break;
        window.windowEndMs = reader.timestampMs();
        continue;
      case 6:
        if (wireType !== VARINT) break;
        window.amountMinor = reader.int64();
        continue;
      case 7:
        if (wireType !== VARINT) break;
        window.transactionCount = reader.uint32();
        continue;
      case 8:
        if (wireType !== VARINT) break;
        window.revision = reader.uint32();
        continue;
      case 10:
        if (wireType !== LENGTH_DELIMITED) break;
        window.lastOccurredAtMs = reader.timestampMs();
        continue;
    }
    reader.skip(wireType);
  }
  if (reader.pos !== end) throw new SpendBatchDecodeError('a window ends beyond its length');
  return window;
}

/** Three-letter codes as strings, decoded once (every window carries one). */
const currencies = new Map<number, string>();

/** Protobuf wire format over one message's bytes. */
class WireReader {
  pos = 0;
  private readonly text: Buffer;

  constructor(private readonly data: Uint8Array) {
    this.text = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  /** A varint's low 32 bits, unsigned (as protobuf's uint32 and tags). */
  uint32(): number {
    const { data } = this;
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.byte(data);
      result |= (byte & 0x7f) << shift;
      if (byte < 0x80) return result >>> 0;
    }
    // Bytes beyond the 32 bits (a negative int32 written as 10 bytes): ignored, as protobuf does.
    for (let extra = 0; extra < 5; extra++) if (this.byte(data) < 0x80) return result >>> 0;
    throw new SpendBatchDecodeError('a varint is longer than 10 bytes');
  }

  /** A varint as an unsigned 64-bit integer, refused above Number.MAX_SAFE_INTEGER. */
  uint64(): number {
    return this.safe(this.varint64(false));
  }

  /** A varint as a signed 64-bit integer (two's complement), refused outside the safe range. */
  int64(): number {
    return this.safe(this.varint64(true));
  }

  length(): number {
    const length = this.uint32();
    if (this.pos + length > this.data.length) throw new SpendBatchDecodeError('a field is longer than the message');
    return length;
  }

  string(): string {
    const length = this.length();
    const text = this.text.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return text;
  }

  /** A string field that is nearly always a three-letter ASCII code. */
  currency(): string {
    const { data } = this;
    const start = this.pos;
    if (start < data.length && data[start] === 3 && start + 4 <= data.length) {
      const a = data[start + 1];
      const b = data[start + 2];
      const c = data[start + 3];
      if (a < 0x80 && b < 0x80 && c < 0x80) {
        const key = (a << 16) | (b << 8) | c;
        let code = currencies.get(key);
        if (code === undefined) {
          code = String.fromCharCode(a, b, c);
          if (currencies.size < 1024) currencies.set(key, code);
        }
        this.pos = start + 4;
        return code;
      }
    }
    return this.string();
  }

  /** A google.protobuf.Timestamp as the epoch milliseconds of the Date the generated decoder makes. */
  timestampMs(): number {
    const length = this.length();
    const end = this.pos + length;
    let seconds = 0;
    let nanos = 0;
    while (this.pos < end) {
      const tag = this.uint32();
      const wireType = tag & 7;
      const field = tag >>> 3;
      if (field === 1 && wireType === VARINT) seconds = this.int64();
      else if (field === 2 && wireType === VARINT) nanos = this.uint32() | 0;
      else this.skip(wireType);
    }
    if (this.pos !== end) throw new SpendBatchDecodeError('a timestamp ends beyond its length');
    const millis = seconds * 1_000 + nanos / 1_000_000;
    // new Date(millis).getTime(): NaN beyond the range, else truncated toward zero (never -0).
    if (!(Math.abs(millis) <= MAX_DATE_MS)) return Number.NaN;
    return Math.trunc(millis) + 0;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case VARINT:
        while (this.byte(this.data) >= 0x80) {
          // continuation bytes
        }
        return;
      case FIXED64:
        this.advance(8);
        return;
      case LENGTH_DELIMITED: {
        const length = this.length();
        this.pos += length;
        return;
      }
      case FIXED32:
        this.advance(4);
        return;
      default:
        throw new SpendBatchDecodeError(`wire type ${wireType} is not used by tolls.stream.v1.CustomerSpendBatch`);
    }
  }

  private byte(data: Uint8Array): number {
    if (this.pos >= data.length) throw new SpendBatchDecodeError('premature end of the message');
    return data[this.pos++];
  }

  private advance(bytes: number): void {
    if (this.pos + bytes > this.data.length) throw new SpendBatchDecodeError('premature end of the message');
    this.pos += bytes;
  }

  /** A varint of up to 10 bytes: a number while it fits 49 bits, else a bigint. */
  private varint64(signed: boolean): number | bigint {
    const { data } = this;
    const start = this.pos;
    let result = 0;
    let multiplier = 1;
    for (let index = 0; index < 7; index++) {
      const byte = this.byte(data);
      result += (byte & 0x7f) * multiplier;
      if (byte < 0x80) return result;
      multiplier *= 128;
    }
    this.pos = start;
    let big = 0n;
    for (let index = 0; index < 10; index++) {
      const byte = this.byte(data);
      big |= BigInt(byte & 0x7f) << BigInt(7 * index);
      if (byte < 0x80) return signed ? BigInt.asIntN(64, big) : BigInt.asUintN(64, big);
    }
    throw new SpendBatchDecodeError('a varint is longer than 10 bytes');
  }

  private safe(value: number | bigint): number {
    if (typeof value === 'number') return value;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new SpendBatchDecodeError('Value is larger than Number.MAX_SAFE_INTEGER');
    if (value < BigInt(Number.MIN_SAFE_INTEGER)) throw new SpendBatchDecodeError('Value is smaller than Number.MIN_SAFE_INTEGER');
    return Number(value);
  }
}
