import { isUtf8 } from 'node:buffer';

/**
 * What the loader's fast paths (transaction-tsv.ts, spend-window-tsv.ts) share: reading protobuf
 * wire data without the generated decoder, and writing TabSeparated fields into one reused Buffer.
 * Every reader throws `notHandled` for input it does not take exactly as the generated (ts-proto over
 * @bufbuild/protobuf) decoder would; `fastPath` turns that into undefined, and the caller then takes
 * the decoder's path.
 */

/** Thrown inside a fast path for anything it does not take; `fastPath` catches it. */
class NotHandled extends Error {}
export const notHandled = new NotHandled('not handled by the fast path');

/**
 * Runs a fast path that writes into `out`: its result, or undefined when it declined the input. On
 * any exception the bytes it wrote are taken back, so that `out` holds only whole messages' rows.
 */
export function fastPath<T>(out: TsvBuffer, read: () => T): T | undefined {
  const start = out.length;
  try {
    return read();
  } catch (error) {
    out.length = start;
    if (error instanceof NotHandled || error instanceof RangeError) return undefined;
    throw error;
  }
}

export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
export const FIXED32 = 5;

export const TAB = 0x09;
export const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;

/** Cursor over the input bytes. */
export interface Cursor {
  data: Uint8Array;
  pos: number;
}

/** A varint up to 2^53 - 1 (a larger or negative int64 is not handled). */
export function varint(cursor: Cursor, end: number): number {
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

/** A uint32 field's value (the decoder would cut a larger one to 32 bits: not handled). */
export function uint32(cursor: Cursor, end: number): number {
  const value = varint(cursor, end);
  if (value > 0xffffffff) throw notHandled;
  return value;
}

/**
 * A field's tag. Tag 0 is not handled: the generated decoder stops reading the message there and its
 * parent goes on from that point.
 */
export function tag(cursor: Cursor, end: number): number {
  const value = varint(cursor, end);
  if (value === 0 || value > 0xffffffff) throw notHandled;
  return value;
}

/** The end of the length-delimited field at the cursor (the cursor then is at its start). */
export function delimitedEnd(cursor: Cursor, end: number): number {
  const fieldEnd = varint(cursor, end) + cursor.pos;
  if (fieldEnd > end) throw notHandled;
  return fieldEnd;
}

/**
 * The end of the next field `fieldNumber` (length-delimited: a repeated sub-message) from the cursor
 * on, skipping the other fields, with the cursor at its start; -1 at the end of the message.
 */
export function nextDelimited(cursor: Cursor, end: number, fieldNumber: number): number {
  while (cursor.pos < end) {
    const fieldTag = tag(cursor, end);
    if (fieldTag >>> 3 === fieldNumber && (fieldTag & 7) === LENGTH_DELIMITED) return delimitedEnd(cursor, end);
    skip(cursor, fieldTag & 7, end);
  }
  return -1;
}

/** Skips a field the fast path does not read. */
export function skip(cursor: Cursor, wireType: number, end: number): void {
  switch (wireType) {
    case VARINT:
      // Ending inside the message (the decoder fails on a truncated one); over 10 bytes: not handled.
      for (let bytes = 1; ; bytes++) {
        if (cursor.pos >= end || bytes > 10) throw notHandled;
        if (cursor.data[cursor.pos++] < 0x80) return;
      }
    case FIXED64:
      cursor.pos += 8;
      break;
    case LENGTH_DELIMITED:
      cursor.pos = delimitedEnd(cursor, end);
      break;
    case FIXED32:
      cursor.pos += 4;
      break;
    default:
      throw notHandled; // groups and invalid wire types: the generated decoder decides
  }
  if (cursor.pos > end) throw notHandled;
}

/** Epoch ms of a google.protobuf.Timestamp ending at `end`, as the generated decoder's Date would give it. */
export function timestampMs(cursor: Cursor, end: number): number {
  let seconds = 0;
  let nanos = 0;
  while (cursor.pos < end) {
    const fieldTag = tag(cursor, end);
    const field = fieldTag >>> 3;
    const wireType = fieldTag & 7;
    if (field === 1 && wireType === VARINT) seconds = varint(cursor, end);
    else if (field === 2 && wireType === VARINT) nanos = varint(cursor, end);
    else skip(cursor, wireType, end);
  }
  if (cursor.pos !== end || nanos > 0x7fffffff) throw notHandled;
  return Math.trunc(seconds * 1_000 + nanos / 1_000_000);
}

/**
 * TabSeparated text written into one growable Buffer. The loader writes all rows of a batch into one
 * (`view` gives a message's rows without copying them, and the batch's body is the span of those views:
 * `joinBodies`); the fast paths also keep a small one for a message's row tail and one for callers
 * that want a copy of their own (both reset per message). In a batch's Buffer, bytes once written are
 * never changed: `ensure` moves on to a larger Buffer (earlier views keep the old one) and a declined
 * message's bytes are taken back by setting `length` back (no view covers them).
 */
export class TsvBuffer {
  bytes: Buffer;
  /** Bytes written so far. */
  length = 0;

  constructor(initialBytes = 1 << 20) {
    this.bytes = Buffer.allocUnsafe(Math.max(16, initialBytes));
  }

  /** Bytes [start, length) without a copy (valid for good: written bytes are not changed). */
  view(start: number): Buffer {
    return this.bytes.subarray(start, this.length);
  }

  /** Starts over (a per-message scratch buffer), giving back a Buffer grown past 16 MiB. */
  reset(): void {
    this.length = 0;
    if (this.bytes.length > 1 << 24) this.bytes = Buffer.allocUnsafe(1 << 20);
  }

  /** Appends what `other` holds (a message's row tail: a few dozen bytes, where a loop beats a native copy). */
  append(other: TsvBuffer): void {
    const count = other.length;
    this.ensure(count);
    const from = other.bytes;
    const bytes = this.bytes;
    let at = this.length;
    for (let i = 0; i < count; i++) bytes[at++] = from[i];
    this.length = at;
  }

  /** Appends again bytes [from, from + count) written before (positions stay the same when it grows). */
  repeat(from: number, count: number): void {
    this.ensure(count);
    const bytes = this.bytes;
    let at = this.length;
    for (let i = from; i < from + count; i++) bytes[at++] = bytes[i];
    this.length = at;
  }

  /** Appends lines (JavaScript strings, each then '\n') as UTF-8 and gives them as a view. */
  lines(lines: readonly string[]): Buffer {
    const start = this.length;
    for (const line of lines) {
      this.ensure(Buffer.byteLength(line) + 1);
      this.length += this.bytes.write(line, this.length);
      this.bytes[this.length++] = NEWLINE;
    }
    return this.view(start);
  }

  ensure(more: number): void {
    if (this.length + more <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + more) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.bytes.copy(bigger, 0, 0, this.length);
    this.bytes = bigger;
  }

  /** One byte (a separator). */
  byte(value: number): void {
    if (this.length === this.bytes.length) this.ensure(1);
    this.bytes[this.length++] = value;
  }

  /**
   * Copies data[start, end) as a TabSeparated field (escaping \\ \t \n \r \0). A field with
   * non-ASCII bytes must be valid UTF-8 for the copy to equal what the decoder reads (it would
   * replace invalid sequences): not handled otherwise.
   */
  field(data: Uint8Array, start: number, end: number): void {
    this.ensure((end - start) * 2);
    const bytes = this.bytes;
    let at = this.length;
    let high = 0;
    for (let i = start; i < end; i++) {
      const value = data[i];
      high |= value;
      // Everything to escape but the backslash is below 14: one comparison for most bytes.
      if (value < 14 ? value === TAB || value === NEWLINE || value === 0x0d || value === 0 : value === BACKSLASH) {
        bytes[at++] = BACKSLASH;
        bytes[at++] = value === BACKSLASH ? BACKSLASH : value === TAB ? 0x74 : value === NEWLINE ? 0x6e : value === 0x0d ? 0x72 : 0x30;
      } else {
        bytes[at++] = value;
      }
    }
    this.length = at;
    if (high >= 0x80 && !isUtf8(data.subarray(start, end))) throw notHandled;
  }

  /** A short ASCII text (numbers, names): a loop beats Buffer#write's native call at this length. */
  ascii(text: string): void {
    this.ensure(text.length);
    const bytes = this.bytes;
    let at = this.length;
    for (let i = 0; i < text.length; i++) bytes[at++] = text.charCodeAt(i);
    this.length = at;
  }

  /** A non-negative safe integer in decimal, as String(value) writes it (without making the string). */
  integer(value: number): void {
    this.ensure(16);
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    const bytes = this.bytes;
    let at = this.length + digits;
    this.length = at;
    let rest = value;
    do {
      bytes[--at] = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
    } while (rest > 0);
  }

  /**
   * DateTime64(3) text of an instant in epoch ms from 2001-09-09 on, as `timestampText` writes it:
   * String(ms / 1000), Unix seconds with the milliseconds' trailing zeros dropped ("1795446675.2").
   */
  unixSeconds(ms: number): void {
    const seconds = Math.floor(ms / 1000);
    const millis = ms - seconds * 1000;
    this.ensure(21);
    const bytes = this.bytes;
    if (seconds >= 1e9 && seconds < 1e10) {
      // Until 2286: ten digits, written as two int32 halves (cheaper than division on doubles).
      let high = Math.floor(seconds / 100_000);
      let low = seconds - high * 100_000;
      let at = this.length + 10;
      this.length = at;
      for (let i = 0; i < 5; i++) {
        bytes[--at] = 0x30 + (low % 10);
        low = (low / 10) | 0;
      }
      for (let i = 0; i < 5; i++) {
        bytes[--at] = 0x30 + (high % 10);
        high = (high / 10) | 0;
      }
    } else {
      this.integer(seconds);
    }
    if (millis === 0) return;
    bytes[this.length++] = 0x2e;
    bytes[this.length++] = 0x30 + Math.floor(millis / 100);
    if (millis % 100 === 0) return;
    bytes[this.length++] = 0x30 + (Math.floor(millis / 10) % 10);
    if (millis % 10 !== 0) bytes[this.length++] = 0x30 + (millis % 10);
  }
}
