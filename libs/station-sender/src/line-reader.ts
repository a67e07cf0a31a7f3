import { createReadStream } from 'node:fs';

export interface TextLine {
  /** 1-based line number in the file. */
  number: number;
  /** The line without its terminator (`\n` or `\r\n`). */
  text: string;
  /** Byte offset just past this line's terminator: where the next line starts. */
  endOffset: number;
}

export interface ReadLinesOptions {
  /** Byte offset to start at; must be the start of a line. */
  startOffset?: number;
  /** Number of the line that starts at `startOffset`. */
  firstLineNumber?: number;
  signal?: AbortSignal;
}

const newline = 0x0a;
const carriageReturn = 0x0d;

/**
 * Streams a file line by line, keeping the exact byte offset of every line end so that a
 * checkpoint can resume by seeking instead of re-reading. Memory holds one chunk plus one line.
 */
export async function* readLines(path: string, options: ReadLinesOptions = {}): AsyncGenerator<TextLine> {
  let offset = options.startOffset ?? 0;
  let number = options.firstLineNumber ?? 1;
  let pending: Buffer[] = [];
  const decode = (bytes: Buffer): string => {
    const end = bytes.length > 0 && bytes[bytes.length - 1] === carriageReturn ? bytes.length - 1 : bytes.length;
    let text = bytes.toString('utf8', 0, end);
    if (offset === 0 && text.charCodeAt(0) === 0xfeff) text = text.slice(1); // byte-order mark
    return text;
  };
  const stream = createReadStream(path, { start: offset, signal: options.signal });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let start = 0;
    let index = chunk.indexOf(newline, start);
    while (index !== -1) {
      const piece = chunk.subarray(start, index);
      const bytes = pending.length > 0 ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      const text = decode(bytes);
      offset += bytes.length + 1;
      yield { number, text, endOffset: offset };
      number += 1;
      start = index + 1;
      index = chunk.indexOf(newline, start);
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) {
    const bytes = Buffer.concat(pending);
    const text = decode(bytes);
    offset += bytes.length;
    yield { number, text, endOffset: offset };
  }
}
