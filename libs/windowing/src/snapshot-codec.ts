/**
 * Byte stream of an engine snapshot, cut into chunks at entry boundaries, with a running FNV-1a
 * checksum so that restore recognises corrupt or truncated input. The reader does not rely on the
 * writer's chunking: storage may hand the bytes back split anywhere.
 */

const fnvOffset = 0x811c9dc5;
const fnvPrime = 0x01000193;
const twoPow32 = 4_294_967_296;
/** Below this magnitude an integer is written as a zig-zag varint (its doubled value stays exact). */
const varintLimit = 2 ** 51;

function hashBytes(hash: number, bytes: Uint8Array, from: number, to: number): number {
  let h = hash;
  for (let i = from; i < to; i++) h = Math.imul(h ^ bytes[i], fnvPrime);
  return h;
}

/** Whether a number round-trips through a zig-zag varint (integers of moderate size, not -0). */
export function isCompactInteger(value: number): boolean {
  return Number.isInteger(value) && value > -varintLimit && value < varintLimit && !(value === 0 && 1 / value < 0);
}

export class ChunkWriter {
  /** Completed chunks, drained by the caller after each entry. */
  readonly ready: Uint8Array[] = [];
  private buffer = new Uint8Array(1024);
  private view = new DataView(this.buffer.buffer);
  private used = 0;
  private entryStart = 0;
  private hash = fnvOffset;
  private readonly encoder = new TextEncoder();

  constructor(private readonly maxChunkBytes: number) {}

  u8(value: number): void {
    this.reserve(1);
    this.buffer[this.used++] = value;
  }

  f64(value: number): void {
    this.reserve(8);
    this.view.setFloat64(this.used, value, true);
    this.used += 8;
  }

  /** Non-negative safe integer, 7 bits per byte. */
  varuint(value: number): void {
    this.reserve(8);
    const buffer = this.buffer;
    let rest = value;
    if (rest < twoPow32) {
      while (rest > 0x7f) {
        buffer[this.used++] = (rest & 0x7f) | 0x80;
        rest >>>= 7;
      }
    } else {
      while (rest > 0x7f) {
        buffer[this.used++] = (rest % 128) | 0x80;
        rest = Math.floor(rest / 128);
      }
    }
    buffer[this.used++] = rest;
  }

  /** Integer (see isCompactInteger) as a zig-zag varint. */
  zigzag(value: number): void {
    this.varuint(value >= 0 ? value * 2 : -value * 2 - 1);
  }

  string(value: string): void {
    let ascii = true;
    for (let i = 0; i < value.length; i++) {
      if (value.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      this.varuint(value.length);
      this.reserve(value.length);
      for (let i = 0; i < value.length; i++) this.buffer[this.used++] = value.charCodeAt(i);
    } else {
      const bytes = this.encoder.encode(value);
      this.varuint(bytes.length);
      this.reserve(bytes.length);
      this.buffer.set(bytes, this.used);
      this.used += bytes.length;
    }
  }

  /** Marks the end of an entry: entries are never split across chunks (one larger than a chunk gets its own). */
  endEntry(): void {
    this.hash = hashBytes(this.hash, this.buffer, this.entryStart, this.used);
    this.cut();
  }

  /** Ends the stream: the checksum of everything before it, then the last chunk. */
  finish(): void {
    this.hash = hashBytes(this.hash, this.buffer, this.entryStart, this.used);
    this.reserve(4);
    this.view.setUint32(this.used, this.hash >>> 0, true);
    this.used += 4;
    this.cut();
    if (this.used > 0) this.ready.push(this.buffer.slice(0, this.used));
    this.used = 0;
    this.entryStart = 0;
  }

  private cut(): void {
    if (this.used > this.maxChunkBytes) {
      if (this.entryStart > 0) {
        this.ready.push(this.buffer.slice(0, this.entryStart));
        this.buffer.copyWithin(0, this.entryStart, this.used);
        this.used -= this.entryStart;
      }
      if (this.used > this.maxChunkBytes) {
        this.ready.push(this.buffer.slice(0, this.used));
        this.used = 0;
      }
    } else if (this.used === this.maxChunkBytes) {
      this.ready.push(this.buffer.slice(0, this.used));
      this.used = 0;
    }
    this.entryStart = this.used;
  }

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.used + bytes) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.used));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }
}

/** A snapshot that cannot be read back. */
export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
}

const empty = new Uint8Array(0);

export class ChunkReader {
  private chunk: Uint8Array = empty;
  private view: DataView = new DataView(empty.buffer);
  private position = 0;
  private hashedTo = 0;
  private hash = fnvOffset;
  private readonly scratch = new Uint8Array(8);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly chunks: Iterator<Uint8Array>) {}

  u8(): number {
    if (this.position >= this.chunk.length && !this.nextChunk()) throw truncated();
    return this.chunk[this.position++];
  }

  f64(): number {
    if (this.chunk.length - this.position >= 8) {
      const value = this.view.getFloat64(this.position, true);
      this.position += 8;
      return value;
    }
    for (let i = 0; i < 8; i++) this.scratch[i] = this.u8();
    return this.scratchView.getFloat64(0, true);
  }

  u32(): number {
    for (let i = 0; i < 4; i++) this.scratch[i] = this.u8();
    return this.scratchView.getUint32(0, true);
  }

  varuint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw corrupt('integer out of range');
        return value;
      }
      scale *= 128;
    }
    throw corrupt('integer too long');
  }

  zigzag(): number {
    const z = this.varuint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  string(maxBytes: number): string {
    const length = this.varuint();
    if (length > maxBytes) throw corrupt(`string of ${length} bytes`);
    let bytes: Uint8Array;
    if (this.chunk.length - this.position >= length) {
      bytes = this.chunk.subarray(this.position, this.position + length);
      this.position += length;
    } else {
      bytes = new Uint8Array(length);
      for (let i = 0; i < length; i++) bytes[i] = this.u8();
    }
    try {
      return this.decoder.decode(bytes);
    } catch {
      throw corrupt('invalid UTF-8');
    }
  }

  /** Checksum of everything read so far. */
  checksum(): number {
    this.hash = hashBytes(this.hash, this.chunk, this.hashedTo, this.position);
    this.hashedTo = this.position;
    return this.hash >>> 0;
  }

  /** Whether the input holds no further bytes. */
  atEnd(): boolean {
    return this.position >= this.chunk.length && !this.nextChunk();
  }

  private nextChunk(): boolean {
    this.hash = hashBytes(this.hash, this.chunk, this.hashedTo, this.chunk.length);
    for (;;) {
      const next = this.chunks.next();
      if (next.done === true) {
        this.hashedTo = this.chunk.length;
        return false;
      }
      const chunk: unknown = next.value;
      if (!(chunk instanceof Uint8Array)) throw corrupt('a chunk is not a Uint8Array');
      if (chunk.length === 0) continue;
      this.chunk = chunk;
      this.view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      this.position = 0;
      this.hashedTo = 0;
      return true;
    }
  }
}

export function corrupt(reason: string): SnapshotError {
  return new SnapshotError(`Corrupt window engine snapshot: ${reason}`);
}

function truncated(): SnapshotError {
  return new SnapshotError('Truncated window engine snapshot: the input ended early');
}
