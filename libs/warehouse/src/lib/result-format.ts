import type { QueryResultTable } from './query';

export type ResultFormat = 'table' | 'json' | 'csv';
export const resultFormats: readonly ResultFormat[] = ['table', 'json', 'csv'];

function cellText(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

const MAX_CELL = 60;

function clip(text: string): string {
  const oneLine = text.replace(/\r?\n/g, '\\n');
  return oneLine.length > MAX_CELL ? `${oneLine.slice(0, MAX_CELL - 1)}…` : oneLine;
}

function csvCell(value: unknown): string {
  const text = value === null || value === undefined ? '' : cellText(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const numericType = /^(Nullable\()?(U?Int|Float|Decimal)/;

/** A query result as a text table (numbers right-aligned), JSON (array of objects) or CSV (header row). */
export function formatResult(result: QueryResultTable, format: ResultFormat): string {
  const names = result.columns.map((column) => column.name);
  if (format === 'json') {
    const objects = result.rows.map((row) => Object.fromEntries(names.map((name, index) => [name, row[index]])));
    return `${JSON.stringify(objects, null, 2)}\n`;
  }
  if (format === 'csv') {
    return [names.map(csvCell).join(','), ...result.rows.map((row) => row.map(csvCell).join(','))].join('\n') + '\n';
  }
  const cells = result.rows.map((row) => row.map((value) => clip(cellText(value))));
  const widths = names.map((name, index) => Math.max(name.length, ...cells.map((row) => row[index]?.length ?? 0)));
  const right = result.columns.map((column) => numericType.test(column.type));
  const line = (values: string[]) =>
    values.map((value, index) => (right[index] ? value.padStart(widths[index]) : value.padEnd(widths[index]))).join(' │ ').trimEnd();
  const rule = widths.map((width) => '─'.repeat(width)).join('─┼─');
  const footer = `${result.rows.length} row${result.rows.length === 1 ? '' : 's'}${result.truncated ? ' (truncated: more rows matched)' : ''}`;
  return [line(names), rule, ...cells.map(line), footer].join('\n') + '\n';
}
