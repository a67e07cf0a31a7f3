/**
 * Micro-benchmark of the warehouse loader's spend-window rows (docs/adr/0007-warehouse-exactly-once.md):
 * CPU seconds of this process per 100,000 spend_windows rows, the generated decoder + JSON rows
 * (`spendWindowRows`) against the fast path from the bytes (`spendWindowTsv`), each up to the body
 * the loader hands to the engine, and then that body's insert into embedded chDB (which parses it on
 * threads of this process). On a shared machine compare the ratios, not the rates.
 *
 * Bundled as the services run in production (under tsx every call into another module goes through
 * an export getter, which about doubles the fast path's cost):
 *
 *   npx esbuild tools/bench/spend-window-rows.ts --bundle --platform=node --format=cjs --external:chdb \
 *     --outfile=dist/bench/spend-window-rows.cjs && node dist/bench/spend-window-rows.cjs [windowsPerMessage=20] [rounds=5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustomerSpendBatch, type CustomerSpendWindow } from '@tollstream/contracts';
import { applyMigrations, insertBody, openWarehouse, spendWindowColumns, spendWindowRows, spendWindowTsv } from '@tollstream/warehouse';

const ROWS = 100_000;
const windowsPerMessage = Number(process.argv[2] ?? 20);
const rounds = Number(process.argv[3] ?? 5);

/** Spend batches as the windower sends them: 1-second windows, one per account and second. */
function messages(): Uint8Array[] {
  const base = Date.parse('2026-12-07T10:00:00Z');
  const result: Uint8Array[] = [];
  for (let m = 0; m * windowsPerMessage < ROWS; m++) {
    const windows: CustomerSpendWindow[] = Array.from({ length: windowsPerMessage }, (_unused, i) => {
      const n = m * windowsPerMessage + i;
      const start = new Date(base + Math.floor(n / 50) * 1_000);
      const account = `acct-${String(n % 200_000).padStart(6, '0')}`;
      return {
        resultId: `spend:${account}:EUR:${n % 8}:${start.toISOString()}:r1`,
        accountId: account,
        currency: 'EUR',
        windowStart: start,
        windowEnd: new Date(start.getTime() + 1_000),
        amountMinor: 100 + (n % 900),
        transactionCount: 1,
        revision: 1,
        sourcePartition: n % 8,
        lastOccurredAt: new Date(start.getTime() + (n % 1_000)),
      };
    });
    result.push(
      CustomerSpendBatch.encode({
        batchId: `spend:${m % 8}:${1_000 + m}:3:0`,
        sourcePartition: m % 8,
        inputSequence: 1_000 + m,
        watermark: new Date(base + m * 10),
        windows,
        chunk: 0,
        previousInputSequence: 999 + m,
        previousChunk: 0,
        finalBefore: new Date(base + m * 10 - 60_000),
        lateTransactions: [],
      }).finish(),
    );
  }
  return result;
}

/** As the loader's decode + insertPart: JSONCompactEachRow lines joined, as the Buffer the raw insert takes. */
function viaDecoder(data: readonly Uint8Array[]): Buffer {
  const lines: string[] = [];
  data.forEach((bytes, index) => {
    for (const line of spendWindowRows(CustomerSpendBatch.decode(bytes), index + 1)) lines.push(line);
  });
  return Buffer.from(lines.join('\n'));
}

function fastPath(data: readonly Uint8Array[]): Buffer {
  const bodies: Buffer[] = [];
  data.forEach((bytes, index) => {
    const fast = spendWindowTsv(bytes, index + 1);
    if (!fast) throw new Error('the fast path declined a benchmark message');
    bodies.push(fast.body);
  });
  return Buffer.concat(bodies);
}

function cpuMs(run: () => void): number {
  const before = process.cpuUsage();
  run();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1_000;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function main(): Promise<void> {
  const data = messages();
  // Warm-up (JIT) of both paths.
  viaDecoder(data);
  fastPath(data);
  const decoderMs: number[] = [];
  const fastMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) decoderMs.push(cpuMs(() => viaDecoder(data)));
    fastMs.push(cpuMs(() => fastPath(data)));
    if (round % 2 === 1) decoderMs.push(cpuMs(() => viaDecoder(data)));
  }
  const rowsMs = { decoder: median(decoderMs), fast: median(fastMs) };

  const dir = mkdtempSync(join(tmpdir(), 'tollstream-spend-bench-'));
  const warehouse = await openWarehouse({ dataDir: dir });
  const insertMs = { decoder: [] as number[], fast: [] as number[] };
  try {
    await applyMigrations(warehouse.client, 'bench');
    const bodies = { decoder: viaDecoder(data), fast: fastPath(data) };
    for (let round = 0; round < rounds; round++) {
      // Alternating which goes first: background merges of the previous insert run on this process's
      // threads too and would otherwise always be counted against the same path.
      for (const path of round % 2 === 0 ? (['decoder', 'fast'] as const) : (['fast', 'decoder'] as const)) {
        const before = process.cpuUsage();
        await insertBody(
          warehouse.client,
          'bench',
          'spend_windows',
          spendWindowColumns,
          bodies[path],
          `bench-${path}-${round}`,
          path === 'fast' ? 'TabSeparated' : 'JSONCompactEachRow',
          warehouse.rawInsert,
        );
        const used = process.cpuUsage(before);
        insertMs[path].push((used.user + used.system) / 1_000);
      }
    }
  } finally {
    await warehouse.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const engine = { decoder: median(insertMs.decoder), fast: median(insertMs.fast) };
  const figures = {
    rows: ROWS,
    windowsPerMessage,
    messages: data.length,
    rounds,
    cpuMsPer100kRows: {
      buildDecoderJson: Math.round(rowsMs.decoder),
      buildFastTsv: Math.round(rowsMs.fast),
      insertJson: Math.round(engine.decoder),
      insertTsv: Math.round(engine.fast),
    },
    ratios: {
      build: Number((rowsMs.decoder / rowsMs.fast).toFixed(1)),
      insert: Number((engine.decoder / engine.fast).toFixed(2)),
      total: Number(((rowsMs.decoder + engine.decoder) / (rowsMs.fast + engine.fast)).toFixed(2)),
    },
  };
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
