import { CustomerSpendBatch, type CustomerSpendWindow, type IngestedTransaction } from '@tollstream/contracts';
import { tempDir, type TempDirHandle } from '@tollstream/testing';
import fc from 'fast-check';
import { ingestedTransactions } from './__fixtures__/arbitraries';
import {
  applyMigrations,
  insertBody,
  joinBodies,
  openWarehouse,
  spendWindowColumns,
  spendWindowRows,
  spendWindowTsv,
  tsvFields,
  TsvBuffer,
  type WarehouseConnection,
} from './index';

/** What the generated decoder's path gives (undefined where it throws, i.e. dead-letters). */
function viaDecoder(data: Uint8Array, seq: number): string[] | undefined {
  let batch: CustomerSpendBatch;
  try {
    batch = CustomerSpendBatch.decode(data);
  } catch {
    return undefined;
  }
  return spendWindowRows(batch, seq);
}

/** The engine reads ten digits of Unix seconds at most (spend-window-tsv.ts). */
const UNIX_SECONDS_END_MS = 1e13;

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ maxLength: 6, unit: 'grapheme' }),
  fc.string({ maxLength: 4, unit: 'binary' }), // lone surrogates: the encoder writes U+FFFD
  fc.constantFrom('', 'acct-42', 'tab\there', 'new\nline', 'back\\slash', 'cr\rnul\0', 'Zürich Ø 東京', '🚗', '\uFEFFbom', 'quote "x"'),
);
/** Ordinary instants, the epoch, missing ones, and the ones timestampText writes as a date (the decoder's path). */
const instant = fc.option(
  fc.oneof(
    { weight: 40, arbitrary: fc.integer({ min: 1e12, max: 4e12 }).map((ms) => new Date(ms)) },
    // Milliseconds with trailing zeros (written without them) and the last instant of ten-digit Unix seconds.
    { weight: 4, arbitrary: fc.constantFrom(1e12, 1.8e12 + 500, 1.8e12 + 10, 1.8e12 + 1, 1.8e12 + 120, UNIX_SECONDS_END_MS - 1).map((ms) => new Date(ms)) },
    // The decoder path's: written as a date, at or before the epoch, beyond ten-digit Unix seconds (the insert fails).
    { weight: 1, arbitrary: fc.constantFrom(new Date(0), new Date('1999-01-02T03:04:05.006Z'), new Date(-5_000), new Date(UNIX_SECONDS_END_MS), new Date(8.64e15)) },
  ),
  { nil: undefined, freq: 6 },
);
const spendWindow: fc.Arbitrary<CustomerSpendWindow> = fc.record({
  resultId: text,
  accountId: text,
  currency: fc.oneof(fc.constantFrom('USD', 'EUR', 'CHF', ''), text),
  windowStart: instant,
  windowEnd: instant,
  amountMinor: fc.oneof(
    { weight: 20, arbitrary: fc.integer({ min: 0, max: 1e9 }) },
    { weight: 1, arbitrary: fc.constant(Number.MAX_SAFE_INTEGER) },
    { weight: 1, arbitrary: fc.integer({ min: -1e6, max: -1 }) },
  ),
  transactionCount: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.constant(2 ** 32 - 1)),
  // 1 for the first result, more for amendments by late records.
  revision: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 20 }), fc.constant(0), fc.constant(2 ** 32 - 1)),
  sourcePartition: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0, max: 63 }) }, { weight: 1, arbitrary: fc.constantFrom(65_535, 65_536) }),
  lastOccurredAt: instant,
});
const lateTransaction = ingestedTransactions(text, instant);
const spendBatch: fc.Arbitrary<CustomerSpendBatch> = fc.record({
  batchId: text,
  sourcePartition: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  inputSequence: fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(Number.MAX_SAFE_INTEGER)),
  watermark: instant,
  windows: fc.array(spendWindow, { maxLength: 6 }),
  chunk: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  previousInputSequence: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
  previousChunk: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { nil: undefined }),
  finalBefore: instant,
  lateTransactions: fc.array(lateTransaction, { maxLength: 2 }),
});

/**
 * Bytes of a message: as encoded, two messages concatenated (protobuf's merge: windows appended, the
 * second batch_id and input_sequence win), or one byte changed (truncations, bad tags, bad UTF-8...).
 */
const message = fc.oneof(
  { weight: 4, arbitrary: spendBatch.map((batch) => CustomerSpendBatch.encode(batch).finish()) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(spendBatch, spendBatch)
      .map(([first, second]) => Buffer.concat([CustomerSpendBatch.encode(first).finish(), CustomerSpendBatch.encode(second).finish()])),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(spendBatch, fc.nat(), fc.integer({ min: 0, max: 255 }))
      .map(([batch, at, value]) => {
        const data = Buffer.from(CustomerSpendBatch.encode(batch).finish());
        if (data.length > 0) data[at % data.length] = value;
        return data;
      }),
  },
);

/** Would the decoder's path write every row as the fast path does (no instant before 2001 written as a date...)? */
function ordinary(batch: CustomerSpendBatch): boolean {
  const time = (date: Date | undefined) =>
    date === undefined || date.getTime() === 0 || (date.getTime() >= 1e12 && date.getTime() < UNIX_SECONDS_END_MS);
  // The watermark and final_before are only read: any instant from the epoch on will do.
  const unused = (date: Date | undefined) => date === undefined || date.getTime() >= 0;
  return unused(batch.watermark) && unused(batch.finalBefore) && batch.windows.every(
    (w) => time(w.windowStart) && time(w.windowEnd) && time(w.lastOccurredAt) && w.amountMinor >= 0 && w.sourcePartition <= 65_535,
  );
}

describe('spendWindowTsv (the loader fast path for spend windows)', () => {
  it('gives exactly the fields of the decoder path rows whenever it answers, and answers for ordinary messages', () => {
    let answered = 0;
    fc.assert(
      fc.property(message, fc.integer({ min: 1, max: 2 ** 40 }), (data, seq) => {
        const fast = spendWindowTsv(data, seq);
        const slow = viaDecoder(data, seq);
        if (fast) {
          answered++;
          expect(slow).toBeDefined();
          const fastRows = fast.body.toString('utf8').split('\n');
          expect(fastRows.pop()).toBe(''); // every row ends with '\n'
          expect(fastRows.map(tsvFields)).toEqual((slow ?? []).map((line) => (JSON.parse(line) as Array<string | number>).map(String)));
          expect(fast.rowCount).toBe(slow?.length);
        }
      }),
      { numRuns: 1_000 },
    );
    expect(answered).toBeGreaterThan(200);

    // Unchanged encodings of ordinary batches are always answered (not declined for nothing).
    fc.assert(
      fc.property(spendBatch, (batch) => {
        if (ordinary(batch)) expect(spendWindowTsv(CustomerSpendBatch.encode(batch).finish(), 7)).toBeDefined();
      }),
      { numRuns: 300 },
    );
  });

  it('skips the fields the rows do not use, takes a batch id written after the windows, and declines what the decoder refuses', () => {
    const window: CustomerSpendWindow = {
      resultId: 'spend:acct-1:USD:0:r2',
      accountId: 'acct-1',
      currency: 'USD',
      windowStart: new Date(1.8e12),
      windowEnd: new Date(1.8e12 + 1_000),
      amountMinor: 750,
      transactionCount: 3,
      revision: 2,
      sourcePartition: 4,
      lastOccurredAt: undefined,
    };
    const late: IngestedTransaction = { transaction: undefined, ingestedAt: new Date(1.8e12), partition: 1 };
    const batch: CustomerSpendBatch = {
      batchId: '',
      sourcePartition: 4,
      inputSequence: 0,
      watermark: new Date(1.8e12 + 5_000),
      windows: [window],
      chunk: 2,
      previousInputSequence: 11,
      previousChunk: 1,
      finalBefore: new Date(1.8e12 - 60_000),
      lateTransactions: [late, late],
    };
    const withIdAfter = Buffer.concat([
      CustomerSpendBatch.encode(batch).finish(),
      CustomerSpendBatch.encode({ ...batch, windows: [], lateTransactions: [], batchId: 'b-9', inputSequence: 12 }).finish(),
    ]);
    expect(spendWindowTsv(withIdAfter, 5)?.body.toString()).toBe('acct-1\tUSD\t1800000000\t1800000001\t4\t2\tspend:acct-1:USD:0:r2\t750\t3\t1970-01-01 00:00:00.000\tb-9\t12\t5\n');
    expect(spendWindowTsv(CustomerSpendBatch.encode({ ...batch, windows: [] }).finish(), 5)).toEqual({ body: Buffer.alloc(0), rowCount: 0 });

    // A previous_input_sequence beyond 2^53 - 1: the decoder throws (dead letter), the fast path declines.
    const unsafe = Buffer.concat([CustomerSpendBatch.encode(batch).finish(), Buffer.from([0x38, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])]);
    expect(viaDecoder(unsafe, 1)).toBeUndefined();
    expect(spendWindowTsv(unsafe, 1)).toBeUndefined();
    // A late transaction the decoder stops reading at a tag 0 (then reads on from there): declined.
    const lateBytes = Buffer.from([0x18, 0x01, 0x00, 0x18, 0x02]);
    const stopped = Buffer.concat([CustomerSpendBatch.encode(batch).finish(), Buffer.from([0x52, lateBytes.length]), lateBytes]);
    expect(spendWindowTsv(stopped, 1)).toBeUndefined();
    // A varint cut off at the end of the message: the decoder throws.
    const truncated = Buffer.concat([CustomerSpendBatch.encode(batch).finish(), Buffer.from([0x30, 0x80])]);
    expect(viaDecoder(truncated, 1)).toBeUndefined();
    expect(spendWindowTsv(truncated, 1)).toBeUndefined();
  });

  describe('what the engine stores', () => {
    let dir: TempDirHandle;
    let warehouse: WarehouseConnection;
    const db = 'spend_tsv_spec';

    beforeAll(async () => {
      dir = await tempDir('spend-tsv');
      warehouse = await openWarehouse({ dataDir: dir.path });
      await applyMigrations(warehouse.client, db);
      // Plain MergeTree copies of spend_windows: every inserted row stays (no replacing by revision).
      for (const table of ['via_decoder', 'fast_path']) {
        await warehouse.client.command({ query: `CREATE TABLE ${db}.${table} AS ${db}.spend_windows ENGINE = MergeTree PARTITION BY tuple() ORDER BY tuple()` });
      }
    }, 60_000);

    afterAll(async () => {
      await warehouse?.close();
      await dir?.remove();
    });

    const stored = async (table: string) => {
      const result = await warehouse.client.query({
        query: `SELECT * EXCEPT loaded_at FROM ${db}.${table} ORDER BY stream_sequence, result_id, account_id, revision, source_partition`,
        format: 'JSONCompactEachRow',
      });
      return result.json<unknown[]>();
    };

    it('the same rows as the decoder path, for 400 generated messages, through the loader insert (raw bytes of one batch buffer)', async () => {
      const messages = fc.sample(message, { numRuns: 400, seed: 20261207 });
      // As the loader builds a batch: every message's rows appended to one buffer (declined ones leave nothing).
      const batch = new TsvBuffer(1 << 20);
      const fastBodies: Buffer[] = [];
      const decoderLines: string[] = [];
      let seq = 0;
      for (const data of messages) {
        seq++;
        const before = batch.length;
        const fast = spendWindowTsv(data, seq, batch);
        if (!fast) {
          expect(batch.length).toBe(before);
          continue;
        }
        expect(fast.body.equals(spendWindowTsv(data, seq)?.body ?? Buffer.alloc(0))).toBe(true);
        fastBodies.push(fast.body);
        decoderLines.push(...(viaDecoder(data, seq) ?? []));
      }
      expect(decoderLines.length).toBeGreaterThan(300);
      await insertBody(warehouse.client, db, 'via_decoder', spendWindowColumns, decoderLines.join('\n'), 'spec-json', 'JSONCompactEachRow', warehouse.rawInsert);
      const body = joinBodies(fastBodies);
      expect(body.buffer === batch.bytes.buffer).toBe(true); // one span of the batch buffer: no copy
      await insertBody(warehouse.client, db, 'fast_path', spendWindowColumns, body, 'spec-tsv', 'TabSeparated', warehouse.rawInsert);
      const expected = await stored('via_decoder');
      expect(expected).toHaveLength(decoderLines.length);
      expect(await stored('fast_path')).toEqual(expected);
    }, 60_000);
  });
});
