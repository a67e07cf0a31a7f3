import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputFileError } from './errors';
import { readLines } from './line-reader';
import { makeTempDir, recordJson, writeLines } from './test-support';
import { readTransactionFile, resolveInputFormat, type InputFormat, type InputLine } from './transaction-file';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
afterEach(() => cleanup());

async function readAll(path: string, format: InputFormat, startOffset = 0, firstLineNumber = 1): Promise<InputLine[]> {
  const items: InputLine[] = [];
  for await (const item of readTransactionFile(path, { format, startOffset, firstLineNumber })) items.push(item);
  return items;
}

const summarize = (items: InputLine[]) =>
  items.map((item) =>
    item.kind === 'record'
      ? `${item.line} record ${item.transaction.transactionId}`
      : item.kind === 'unparseable'
        ? `${item.line}: ${item.reason}`
        : `${item.line} skipped`,
  );

describe('resolveInputFormat', () => {
  it.each([
    ['a.ndjson', 'ndjson'],
    ['a.JSONL', 'ndjson'],
    ['dir/a.csv', 'csv'],
  ])('%s is %s', (path, format) => expect(resolveInputFormat(path)).toBe(format));

  it('prefers the explicit format', () => expect(resolveInputFormat('export.txt', 'csv')).toBe('csv'));

  it('refuses an unknown extension', () => {
    expect(() => resolveInputFormat('export.txt')).toThrow(InputFileError);
  });
});

describe('readLines', () => {
  it('keeps exact byte offsets across chunks, CRLF, multi-byte text and a last line without newline', async () => {
    const path = join(dir, 'lines.txt');
    const long = 'é'.repeat(40_000); // 80 000 bytes: crosses the 64 KiB read chunks
    await writeFile(path, `\ufeffa\r\n${long}\n\nlast`);
    const lines = [];
    for await (const line of readLines(path)) lines.push(line);
    expect(lines.map((line) => [line.number, line.text.length, line.endOffset])).toEqual([
      [1, 1, 6],
      [2, 40_000, 80_007],
      [3, 0, 80_008],
      [4, 4, 80_012],
    ]);
    expect(lines[0]?.text).toBe('a');
    const resumed = [];
    for await (const line of readLines(path, { startOffset: 80_007, firstLineNumber: 3 })) resumed.push(line);
    expect(resumed.map((line) => [line.number, line.text])).toEqual([
      [3, ''],
      [4, 'last'],
    ]);
  });
});

describe('readTransactionFile: NDJSON', () => {
  it('yields records, skips blank lines and reports unparseable lines with their numbers', async () => {
    const path = join(dir, 'tx.ndjson');
    await writeLines(path, [
      recordJson(1),
      '',
      recordJson(2, { amount_minor: '12.5' }),
      '{"transaction_id": "tx-3", ',
      recordJson(4, { occurred_at: '2024-05-01T08:30:00' }),
      '[1,2]',
      recordJson(5, { vehicle_class: 'VEHICLE_CLASS_BUS' }),
    ]);
    expect(summarize(await readAll(path, 'ndjson'))).toEqual([
      '1 record tx-000001',
      '2 skipped',
      '3: amount_minor: "12.5" is not an integer',
      expect.stringMatching(/^4: not valid JSON \(/),
      expect.stringMatching(/^5: occurred_at: "2024-05-01T08:30:00" has no UTC offset/),
      '6: expected an object with the transaction fields, got array',
      '7 record tx-000005',
    ]);
  });

  it('resumes at a byte offset with the right line numbers', async () => {
    const path = join(dir, 'tx.jsonl');
    const lines = [recordJson(1), recordJson(2), recordJson(3, { amount_minor: 'x' })];
    await writeLines(path, lines);
    const offset = Buffer.byteLength(`${lines[0]}\n`);
    expect(summarize(await readAll(path, 'ndjson', offset, 2))).toEqual([
      '2 record tx-000002',
      '3: amount_minor: "x" is not an integer',
    ]);
  });

  it('fails as InputFileError when the file does not exist', async () => {
    await expect(readAll(join(dir, 'missing.ndjson'), 'ndjson')).rejects.toThrow(InputFileError);
  });
});

describe('readTransactionFile: CSV', () => {
  const header = 'transaction_id,station_id,lane_id,tag_id,plate,account_id,vehicle_class,amount_minor,currency,occurred_at';

  it('reads records by header, quoted cells included, and reports bad lines with their numbers', async () => {
    const path = join(dir, 'tx.csv');
    await writeLines(path, [
      header,
      'tx-1,st-001,L01,TAG1,"ABC 123",acct-1,car,275,USD,2024-05-01T08:30:00Z',
      'tx-2,st-001,L01,,"AB, 12",,VEHICLE_CLASS_TRUCK_2_AXLE,"550",USD,2024-05-01T10:30:00+02:00',
      'tx-3,st-001,L01,TAG3,,,car,12.5,USD,2024-05-01T08:30:00Z',
      'tx-4,st-001,L01,TAG4,,,car,275,USD',
      '',
      'tx-5,st-001,L01,"TAG5,,,car,275,USD,2024-05-01T08:30:00Z',
      'tx-6,st-001,L01,TAG6,,,car,275,USD,2024-05-01 08:30:00',
      'tx-7,st-001,L01,TAG7,,,bus,825,USD,2024-05-01T08:31:00Z',
    ]);
    const items = await readAll(path, 'csv');
    expect(summarize(items)).toEqual([
      '1 skipped',
      '2 record tx-1',
      '3 record tx-2',
      '4: amount_minor: "12.5" is not an integer',
      '5: expected 10 columns as in the header, got 9',
      '6 skipped',
      expect.stringMatching(/^7: not valid CSV \(Quote Not Closed/),
      expect.stringMatching(/^8: occurred_at: "2024-05-01 08:30:00" has no UTC offset/),
      '9 record tx-7',
    ]);
    const second = items[2];
    expect(second?.kind === 'record' && second.transaction).toMatchObject({
      tagId: '',
      plate: 'AB, 12',
      amountMinor: 550,
      occurredAt: new Date('2024-05-01T08:30:00Z'),
    });
  });

  it('allows leaving out the optional columns, in any order and case', async () => {
    const path = join(dir, 'tx.csv');
    await writeLines(path, [
      'Occurred_At,currency,amount_minor,vehicle_class,lane_id,station_id,transaction_id,plate',
      '2024-05-01T08:30:00Z,USD,140,motorcycle,L02,st-002,tx-9,XYZ 9',
    ]);
    const [, record] = await readAll(path, 'csv');
    expect(record?.kind === 'record' && record.transaction).toMatchObject({ transactionId: 'tx-9', tagId: '', plate: 'XYZ 9' });
  });

  it.each([
    ['transaction_id,station_id', /missing column\(s\) lane_id, vehicle_class, amount_minor, currency, occurred_at/],
    [`${header},colour`, /unknown column\(s\) "colour"/],
    [`${header},plate`, /repeated column\(s\) plate/],
  ])('refuses the header %s', async (badHeader, message) => {
    const path = join(dir, 'tx.csv');
    await writeLines(path, [badHeader, 'x']);
    const failure = readAll(path, 'csv');
    await expect(failure).rejects.toThrow(InputFileError);
    await expect(readAll(path, 'csv')).rejects.toThrow(message);
  });

  it('reads the header from the top when resuming in the middle', async () => {
    const path = join(dir, 'tx.csv');
    const lines = [header, 'tx-1,st-001,L01,TAG1,,,car,275,USD,2024-05-01T08:30:00Z', 'tx-2,st-001,L01,TAG2,,,car,275,USD,2024-05-01T08:31:00Z'];
    await writeLines(path, lines);
    const offset = Buffer.byteLength(`${lines[0]}\n${lines[1]}\n`);
    expect(summarize(await readAll(path, 'csv', offset, 3))).toEqual(['3 record tx-2']);
  });

  it('refuses an empty CSV file when resuming (no header)', async () => {
    const path = join(dir, 'tx.csv');
    await writeFile(path, '\n\n');
    await expect(readAll(path, 'csv', 1, 2)).rejects.toThrow(/needs a header row/);
  });
});
