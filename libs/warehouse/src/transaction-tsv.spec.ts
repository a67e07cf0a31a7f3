import { TransactionBatch, type IngestedTransaction } from '@tollstream/contracts';
import { tempDir, type TempDirHandle } from '@tollstream/testing';
import fc from 'fast-check';
import { ingestedTransactions } from './__fixtures__/arbitraries';
import {
  applyMigrations,
  insertBody,
  insertLines,
  joinBodies,
  openWarehouse,
  transactionColumns,
  transactionRows,
  transactionTsv,
  TsvBuffer,
  type WarehouseConnection,
} from './index';

/** What the generated decoder's path gives for a message: the lines, each ending with '\n'. */
function viaDecoder(data: Uint8Array, seq: number): { body: string; rows: number; oldest: number; invalid: number } {
  const mapped = transactionRows(TransactionBatch.decode(data), seq);
  return { body: mapped.lines.map((line) => `${line}\n`).join(''), rows: mapped.lines.length, oldest: mapped.oldestIngestedAtMs, invalid: mapped.invalid.length };
}

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', 'tab\there', 'new\nline', 'back\\slash', 'cr\rnul\0', 'Zürich Ø 東京', '🚗'),
);
const instant = fc.oneof(
  fc.integer({ min: 1e12, max: 4e12 }).map((ms) => new Date(ms)),
  fc.constantFrom(new Date('1999-01-02T03:04:05.006Z'), new Date(0)),
  // More than ten digits of Unix seconds (written another way by the fast path), the largest Date.
  fc.constantFrom(new Date(2e13 + 120), new Date(8.64e15 - 1), new Date(1e13)),
);
const record = ingestedTransactions(text, fc.option(instant, { nil: undefined }));

describe('transactionTsv (the loader fast path)', () => {
  it('gives exactly the rows of the generated decoder whenever it answers, and answers for ordinary messages', () => {
    fc.assert(
      fc.property(text, fc.array(record, { maxLength: 8 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.boolean(), (batchId, records, seq, oneIngestedAt) => {
        // As the ingestor writes them, all records of a message share an ingested_at (its text is written once, then copied).
        const transactions = oneIngestedAt ? records.map((r) => ({ ...r, ingestedAt: records[0]?.ingestedAt })) : records;
        const data = TransactionBatch.encode({ batchId, transactions }).finish();
        const fast = transactionTsv(data, seq);
        const slow = viaDecoder(data, seq);
        if (fast) {
          expect(slow.invalid).toBe(0);
          expect(fast.body.toString('utf8')).toBe(slow.body);
          expect(fast.rowCount).toBe(slow.rows);
          expect(fast.oldestIngestedAtMs).toEqual(slow.oldest);
        } else {
          // Declined: only for what the decoder path must handle (invalid records, old instants, negative numbers).
          const ordinary = transactions.every(
            (r) =>
              r.transaction !== undefined &&
              r.transaction.stationId !== '' &&
              r.transaction.transactionId !== '' &&
              r.transaction.vehicleClass >= 0 &&
              r.transaction.amountMinor >= 0 &&
              (r.transaction.occurredAt?.getTime() ?? 0) >= 1e12 &&
              (r.ingestedAt?.getTime() ?? 0) >= 1e12,
          );
          expect(ordinary).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('handles a message larger than its initial 1 MiB output buffer', () => {
    const transactions: IngestedTransaction[] = Array.from({ length: 12_000 }, (_unused, i) => ({
      transaction: { transactionId: `t-${i}`, stationId: 's', laneId: '', tagId: '', plate: `${'\t'.repeat(i % 3)}${'p'.repeat(100)}`, accountId: 'a', vehicleClass: 2, amountMinor: i, currency: 'USD', occurredAt: new Date(1.8e12 + i) },
      ingestedAt: new Date(1.8e12 + 2 * i),
      partition: 1,
    }));
    const data = TransactionBatch.encode({ batchId: 'big', transactions }).finish();
    const fast = transactionTsv(data, 3);
    expect(fast?.body.length).toBeGreaterThan(1 << 20);
    expect(fast?.body.toString()).toBe(viaDecoder(data, 3).body);
  });

  it('takes the batch id written after the records, gives nothing for a heartbeat, and declines malformed input', () => {
    const one: IngestedTransaction = {
      transaction: { transactionId: 't', stationId: 's', laneId: 'l', tagId: 'g', plate: 'p', accountId: 'a', vehicleClass: 1, amountMinor: 5, currency: 'USD', occurredAt: new Date(1.8e12) },
      ingestedAt: new Date(1.8e12 + 1),
      partition: 2,
    };
    const records = TransactionBatch.encode({ batchId: '', transactions: [one] }).finish();
    const id = TransactionBatch.encode({ batchId: 'late-id', transactions: [] }).finish();
    const reordered = Buffer.concat([records, id]);
    expect(transactionTsv(reordered, 9)?.body.toString()).toBe(viaDecoder(reordered, 9).body);
    expect(transactionTsv(reordered, 9)?.body.toString()).toMatch(/\t9\tlate-id\n$/);
    expect(transactionTsv(TransactionBatch.encode({ batchId: 'heartbeat', transactions: [] }).finish(), 1)?.rowCount).toBe(0);
    expect(transactionTsv(records.subarray(0, records.length - 3), 1)).toBeUndefined();
    expect(transactionTsv(Buffer.from([0xff, 0xff, 0xff]), 1)).toBeUndefined();
    const transaction = { transactionId: 't', stationId: 's', laneId: 'l', tagId: 'g', plate: 'ÿÿ', accountId: 'a', vehicleClass: 1, amountMinor: 5, currency: 'USD', occurredAt: new Date(1.8e12) };
    const badUtf8 = Buffer.from(TransactionBatch.encode({ batchId: '', transactions: [{ ...one, transaction }] }).finish());
    const at = badUtf8.indexOf(Buffer.from('ÿÿ'));
    badUtf8[at] = 0xc3;
    badUtf8[at + 1] = 0x28; // an invalid UTF-8 sequence: the decoder would replace it
    badUtf8[at + 2] = 0xc3;
    badUtf8[at + 3] = 0x28;
    expect(transactionTsv(badUtf8, 1)).toBeUndefined();
  });

  it('writes into a batch buffer as the loader does: one view per message, the batch one span of them, declined messages leave nothing', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(text, fc.array(record, { maxLength: 5 })), { maxLength: 8 }), fc.integer({ min: 16, max: 2_048 }), (messages, initialBytes) => {
        const batch = new TsvBuffer(initialBytes);
        const views: Buffer[] = [];
        let expected = '';
        messages.forEach(([batchId, transactions], index) => {
          const data = TransactionBatch.encode({ batchId, transactions }).finish();
          const before = batch.length;
          const fast = transactionTsv(data, index + 1, batch);
          if (!fast) {
            expect(batch.length).toBe(before);
            return;
          }
          expect(fast.body.toString('utf8')).toBe(viaDecoder(data, index + 1).body);
          expect(batch.length).toBe(before + fast.body.length);
          views.push(fast.body);
          expected += viaDecoder(data, index + 1).body;
        });
        const body = joinBodies(views);
        expect(body.toString('utf8')).toBe(expected);
        // Not grown: the body is the batch buffer's own bytes, no copy.
        if (views.length > 1 && batch.bytes.length === Math.max(16, initialBytes)) expect(body.buffer === batch.bytes.buffer).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('joinBodies: a view of parts side by side in memory, a copy of the others, the parts\' bytes in order either way', () => {
    const whole = Buffer.alloc(8); // its own ArrayBuffer (Buffer.from would take a slice of the shared pool)
    whole.write('abcdefgh');
    const adjacent = joinBodies([whole.subarray(0, 3), whole.subarray(3, 3), whole.subarray(3, 8)]);
    expect(adjacent.toString()).toBe('abcdefgh');
    expect(adjacent.buffer === whole.buffer).toBe(true);
    expect(adjacent.byteOffset).toBe(whole.byteOffset);
    const gap = joinBodies([whole.subarray(0, 2), whole.subarray(3, 5)]);
    expect(gap.toString()).toBe('abde');
    expect(gap.buffer === whole.buffer).toBe(false);
    const swapped = joinBodies([whole.subarray(4, 8), whole.subarray(0, 4)]);
    expect(swapped.toString()).toBe('efghabcd');
    expect(joinBodies([Buffer.from('x'), Buffer.from('y')]).toString()).toBe('xy');
    expect(joinBodies([])).toHaveLength(0);
  });

  describe('what the engine stores', () => {
    let dir: TempDirHandle;
    let warehouse: WarehouseConnection;
    const db = 'transaction_tsv_spec';

    beforeAll(async () => {
      dir = await tempDir('transaction-tsv');
      warehouse = await openWarehouse({ dataDir: dir.path });
      await applyMigrations(warehouse.client, db);
      // Plain MergeTree copies of transactions: every inserted row stays (no replacing by identity).
      for (const table of ['generic_path', 'batch_buffer']) {
        await warehouse.client.command({ query: `CREATE TABLE ${db}.${table} AS ${db}.transactions ENGINE = MergeTree PARTITION BY tuple() ORDER BY tuple()` });
      }
    }, 60_000);

    afterAll(async () => {
      await warehouse?.close();
      await dir?.remove();
    });

    const stored = async (table: string) => {
      const result = await warehouse.client.query({ query: `SELECT * EXCEPT loaded_at FROM ${db}.${table} ORDER BY ALL`, format: 'JSONCompactEachRow' });
      return result.json<unknown[]>();
    };

    it('the same rows as the generic path, for 300 generated messages loaded as the loader builds its batch body', async () => {
      // Instants the engine takes either way: ordinary ones (fast path) and old ones (written as dates: the decoder's path).
      const storable = fc.oneof(
        { weight: 20, arbitrary: fc.integer({ min: 1e12, max: 4e12 }).map((ms) => new Date(ms)) },
        { weight: 1, arbitrary: fc.constant(new Date('1999-01-02T03:04:05.006Z')) },
      );
      const messages = fc.sample(fc.tuple(text, fc.array(ingestedTransactions(text, storable), { maxLength: 6 })), { numRuns: 300, seed: 20261207 });
      // The loader's path: fast rows into one batch buffer, a declined message's decoder rows appended to it.
      const batch = new TsvBuffer(1 << 20);
      const views: Buffer[] = [];
      // The generic path: every message through the generated decoder, one string through client.exec.
      const genericLines: string[] = [];
      let declined = 0;
      messages.forEach(([batchId, transactions], index) => {
        const data = TransactionBatch.encode({ batchId, transactions }).finish();
        const lines = transactionRows(TransactionBatch.decode(data), index + 1).lines;
        genericLines.push(...lines);
        const fast = transactionTsv(data, index + 1, batch);
        if (fast) views.push(fast.body);
        else if (lines.length > 0) {
          declined++;
          views.push(batch.lines(lines));
        }
      });
      expect(declined).toBeGreaterThan(10);
      expect(genericLines.length).toBeGreaterThan(300);
      const body = joinBodies(views);
      expect(body.buffer === batch.bytes.buffer).toBe(true); // one span of the batch buffer: no copy
      await insertLines(warehouse.client, db, 'generic_path', transactionColumns, genericLines, 'spec-generic', 'TabSeparated');
      await insertBody(warehouse.client, db, 'batch_buffer', transactionColumns, body, 'spec-batch', 'TabSeparated', warehouse.rawInsert);
      const expected = await stored('generic_path');
      expect(expected).toHaveLength(genericLines.length);
      expect(await stored('batch_buffer')).toEqual(expected);
    }, 60_000);
  });
});
