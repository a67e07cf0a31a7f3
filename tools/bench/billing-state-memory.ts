/**
 * Memory of billing's state machine alone (no service, no store, no read model): ACCOUNTS accounts in
 * SHARDS shards after RESULTS window results (one per account and event second, EVENT_RATE results per
 * event second, windows final 10 s after they end, as the windower marks them). Heap and array
 * buffers after a full collection, per account. ADR 0013 amendment 5.
 *
 *   ACCOUNTS=1000000 RESULTS=2000000 node --expose-gc --import tsx tools/bench/billing-state-memory.ts
 */
import { BillingShard } from '@tollstream/billing';

const setting = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const accounts = setting('ACCOUNTS', 1_000_000);
const results = setting('RESULTS', accounts);
const shardCount = setting('SHARDS', 8);
const perEventSecond = Math.max(1, Math.min(accounts, setting('EVENT_RATE', 30_000)));
const RESULTS_PER_BATCH = 500;
const ALLOWED_LATENESS_MS = 10_000;

const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error('run with node --expose-gc (see the comment at the top)');
// Array buffers' memory is released by a concurrent sweeper: collect, let it run, collect again.
const measure = async () => {
  for (let round = 0; round < 3; round++) {
    collect();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, arrayBuffers: usage.arrayBuffers };
};

async function main(): Promise<void> {
  const before = await measure();
  const shards = Array.from(
    { length: shardCount },
    (_, shard) => new BillingShard({ shard, policy: { operatorTimeZone: 'Europe/Berlin', ledgerRetentionMs: 40 * 86_400_000 }, maxThresholdMinor: 1e12, gapTimeoutMs: 30_000, maxHeldBatches: 1_000 }),
  );
  const sequences = new Array<number>(shardCount).fill(0);
  const firstWindowMs = Date.UTC(2026, 11, 7, 12);
  for (let first = 0, batch = 0; first < results; first += RESULTS_PER_BATCH, batch++) {
    const shard = batch % shardCount;
    const windows = [];
    for (let i = first; i < Math.min(results, first + RESULTS_PER_BATCH); i++) {
      const startMs = firstWindowMs + Math.floor(i / perEventSecond) * 1_000;
      windows.push({ accountId: `bench-${i % accounts}`, currency: 'USD', windowStartMs: startMs, windowEndMs: startMs + 1_000, amountMinor: 250, transactionCount: 1, revision: 1, lastOccurredAtMs: startMs + 500, byteStart: 0, byteEnd: 0 });
    }
    const sequence = ++sequences[shard];
    const oldestStartMs = windows[0].windowStartMs;
    shards[shard].applySpendBatch(sequence, oldestStartMs + 2_000, {
      data: new Uint8Array(0),
      sourcePartition: 0,
      inputSequence: sequence,
      chunk: 0,
      previousInputSequence: sequence - 1,
      previousChunk: 0,
      finalBeforeMs: oldestStartMs - ALLOWED_LATENESS_MS,
      windows,
      lateTransactions: [],
    });
    shards[shard].takeChangedRecords(0);
}
const after = await measure();
const sum = (of: (shard: BillingShard) => number) => shards.reduce((total, shard) => total + of(shard), 0);
const MiB = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const heap = after.heap - before.heap;
const arrayBuffers = after.arrayBuffers - before.arrayBuffers;
const held = sum((shard) => shard.accountCount);
console.log(
  `${held.toLocaleString('en-US')} accounts, ${sum((shard) => shard.openMonthCount).toLocaleString('en-US')} open months, ` +
    `${sum((shard) => shard.revisableWindows).toLocaleString('en-US')} revisable windows in ${shardCount} shards: ` +
    `heap ${MiB(heap)} MiB + array buffers ${MiB(arrayBuffers)} MiB = ${((heap + arrayBuffers) / held).toFixed(0)} bytes per account; process RSS ${MiB(process.memoryUsage().rss)} MiB`,
);
}

void main();
