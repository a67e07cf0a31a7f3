import type { TollTransaction } from '@tollstream/contracts';
import { parse as parseCsv } from 'csv-parse/sync';
import { extname } from 'node:path';
import { InputFileError } from './errors';
import { readLines, type TextLine } from './line-reader';
import {
  optionalTransactionFields,
  parseTransactionRecord,
  quoteValue,
  transactionFieldNames,
  type TransactionFieldName,
} from './transaction-record';

export const inputFormats = ['ndjson', 'csv'] as const;
export type InputFormat = (typeof inputFormats)[number];

const formatByExtension: Readonly<Record<string, InputFormat>> = {
  '.ndjson': 'ndjson',
  '.jsonl': 'ndjson',
  '.csv': 'csv',
};

/** The explicit format when given, otherwise the one the file extension names. */
export function resolveInputFormat(path: string, explicit?: InputFormat): InputFormat {
  if (explicit) return explicit;
  const format = formatByExtension[extname(path).toLowerCase()];
  if (!format) {
    throw new InputFileError(
      `cannot tell the format of ${path} from its extension; name it .ndjson, .jsonl or .csv, or pass the format (ndjson or csv)`,
    );
  }
  return format;
}

/** One line of the input, classified. Every line of the file appears exactly once, in order. */
export type InputLine =
  | { kind: 'record'; line: number; endOffset: number; transaction: TollTransaction }
  | { kind: 'unparseable'; line: number; endOffset: number; reason: string }
  /** Blank lines and the CSV header: nothing to send. */
  | { kind: 'skipped'; line: number; endOffset: number };

export interface ReadTransactionsOptions {
  format: InputFormat;
  /** Resume point: byte offset of the first line to read (0 = start of file). */
  startOffset?: number;
  /** Number of the line that starts at `startOffset`. */
  firstLineNumber?: number;
  signal?: AbortSignal;
}

/**
 * Streams the transactions of an NDJSON or CSV file. Lines that cannot be parsed are yielded as
 * `unparseable` with the reason; the caller decides what to do with them (the sender counts and
 * reports them and goes on). Only a file that cannot be read at all (or a CSV file whose header
 * is unusable) throws, as InputFileError.
 */
export async function* readTransactionFile(path: string, options: ReadTransactionsOptions): AsyncGenerator<InputLine> {
  const startOffset = options.startOffset ?? 0;
  const lines = readLines(path, { startOffset, firstLineNumber: options.firstLineNumber, signal: options.signal });
  try {
    if (options.format === 'ndjson') {
      for await (const line of lines) yield classifyNdjsonLine(line);
      return;
    }
    let columns: TransactionFieldName[] | undefined;
    if (startOffset > 0) columns = (await readCsvHeader(path)).columns;
    for await (const line of lines) {
      if (line.text.trim() === '') {
        yield { kind: 'skipped', line: line.number, endOffset: line.endOffset };
      } else if (columns === undefined) {
        columns = parseCsvHeader(line.text, line.number);
        yield { kind: 'skipped', line: line.number, endOffset: line.endOffset };
      } else {
        yield classifyCsvLine(line, columns);
      }
    }
  } catch (error) {
    if (error instanceof InputFileError || (error instanceof Error && error.name === 'AbortError')) throw error;
    throw new InputFileError(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}

function classifyNdjsonLine(line: TextLine): InputLine {
  const { number, endOffset } = line;
  if (line.text.trim() === '') return { kind: 'skipped', line: number, endOffset };
  let value: unknown;
  try {
    value = JSON.parse(line.text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return { kind: 'unparseable', line: number, endOffset, reason: `not valid JSON (${detail})` };
  }
  return toInputLine(number, endOffset, value);
}

function toInputLine(number: number, endOffset: number, record: unknown): InputLine {
  const parsed = parseTransactionRecord(record);
  return parsed.ok
    ? { kind: 'record', line: number, endOffset, transaction: parsed.transaction }
    : { kind: 'unparseable', line: number, endOffset, reason: parsed.reason };
}

function splitCsvLine(text: string): string[] {
  const rows = parseCsv(text, { trim: true }) as string[][];
  if (rows.length !== 1 || rows[0] === undefined) throw new Error('expected exactly one record on the line');
  return rows[0];
}

const csvProblem = (error: unknown): string =>
  `not valid CSV (${(error instanceof Error ? error.message : String(error)).replace(/ at line \d+/, '')})`;

/** Reads the header row of a CSV file: the first line that is not blank. */
export async function readCsvHeader(path: string): Promise<{ columns: TransactionFieldName[]; line: number }> {
  for await (const line of readLines(path)) {
    if (line.text.trim() !== '') return { columns: parseCsvHeader(line.text, line.number), line: line.number };
  }
  throw new InputFileError(`${path} is empty: a CSV file needs a header row (${transactionFieldNames.join(',')})`);
}

const knownFields: ReadonlySet<string> = new Set(transactionFieldNames);

function parseCsvHeader(text: string, lineNumber: number): TransactionFieldName[] {
  let names: string[];
  try {
    names = splitCsvLine(text).map((name) => name.toLowerCase());
  } catch (error) {
    throw new InputFileError(`line ${lineNumber}: CSV header: ${csvProblem(error)}`);
  }
  const problems: string[] = [];
  const unknown = names.filter((name) => !knownFields.has(name));
  if (unknown.length > 0) problems.push(`unknown column(s) ${unknown.map((name) => quoteValue(name)).join(', ')}`);
  const repeated = names.filter((name, index) => names.indexOf(name) !== index);
  if (repeated.length > 0) problems.push(`repeated column(s) ${[...new Set(repeated)].join(', ')}`);
  const missing = transactionFieldNames.filter((field) => !optionalTransactionFields.has(field) && !names.includes(field));
  if (missing.length > 0) problems.push(`missing column(s) ${missing.join(', ')}`);
  if (problems.length > 0) {
    throw new InputFileError(
      `line ${lineNumber}: CSV header: ${problems.join('; ')}. Expected the columns ${transactionFieldNames.join(',')} ` +
        `(${[...optionalTransactionFields].join(', ')} may be left out)`,
    );
  }
  return names as TransactionFieldName[];
}

function classifyCsvLine(line: TextLine, columns: readonly TransactionFieldName[]): InputLine {
  const { number, endOffset } = line;
  let cells: string[];
  try {
    cells = splitCsvLine(line.text);
  } catch (error) {
    return { kind: 'unparseable', line: number, endOffset, reason: csvProblem(error) };
  }
  if (cells.length !== columns.length) {
    return {
      kind: 'unparseable',
      line: number,
      endOffset,
      reason: `expected ${columns.length} columns as in the header, got ${cells.length}`,
    };
  }
  const record: Record<string, string> = {};
  columns.forEach((column, index) => {
    record[column] = cells[index] ?? '';
  });
  return toInputLine(number, endOffset, record);
}
