/**
 * Broker crash test (ADR 0014): nats-server runs with fsync "always" (the production setting; on
 * nats-server 2.9, which has no sync_interval, emulated by a synchronous store directory, see
 * libs/testing nats-fsync.ts) and is killed with SIGKILL twice while stations send, then started
 * again on the same store. Every record a station was answered ACCEPTED is afterwards in TOLL_TX
 * exactly once and in the warehouse's raw table exactly once; every other record of a retried batch
 * was answered DUPLICATE (it had landed before the crash) and is there exactly once too.
 *
 * What this proves and what it does not: SIGKILL ends the process, not the machine, so the OS page
 * cache survives and even unsynced writes reach the disk. The test proves the broker's recovery of its
 * store and the ingestor's and loader's exactly-once paths across a broker crash; it cannot prove that
 * an acknowledged write survives an OS crash or power loss. That rests on the server writing with
 * O_SYNC before it acknowledges (sync_interval: always) and on disks that honour it (docs/deployment.md).
 */
import { describeIf, dockerConfiguredSync, readTransactionStream, waitFor, type NatsFsync } from '@tollstream/testing';
import { VehicleClass, type TollTransaction } from '@tollstream/contracts';
import { queryWarehouse, sendBatches, startPipeline, warehouseTransactionIds, type Pipeline, type SendOutcome } from './pipeline';
import { STATIONS } from './scenario';

const FSYNC: NatsFsync = 'always';
const SENDERS = 4;
const BATCHES_PER_SENDER = 60;
const RECORDS_PER_BATCH = 100;
const BATCH_INTERVAL_MS = 250; // per sender: 4 × 100 records every 250 ms ≈ 1,600 records/s for ~15 s
const KILL_AFTER_BATCHES = [50, 140]; // of SENDERS × BATCHES_PER_SENDER = 240
const DOWN_MS = 1_500;

const ownsLocalServer = !process.env['NATS_URL'] && !dockerConfiguredSync();

function batchesOf(sender: number, runId: string, occurredAt: Date): TollTransaction[][] {
  return Array.from({ length: BATCHES_PER_SENDER }, (_, batch) =>
    Array.from({ length: RECORDS_PER_BATCH }, (_, index) => {
      const n = (batch * RECORDS_PER_BATCH + index) * SENDERS + sender;
      return {
        transactionId: `${runId}-${sender}-${batch}-${index}`,
        stationId: STATIONS[n % STATIONS.length].id,
        laneId: `L${n % 4}`,
        tagId: `TAG-${n % 997}`,
        plate: '',
        accountId: `acct-${n % 50}`,
        vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
        amountMinor: 100 + (n % 400),
        currency: 'USD',
        occurredAt,
      };
    }),
  );
}

let pipeline: Pipeline | undefined;
afterAll(async () => {
  await pipeline?.close();
}, 60_000);

describeIf(ownsLocalServer, 'nats-server SIGKILLed during ingest', 'needs a harness-owned local nats-server (NATS_URL is set or Docker is used)', () => {
  it(`with fsync "${FSYNC}": every ACCEPTED record is in the stream and the warehouse exactly once`, async () => {
    const deadlineMs = Date.now() + 110_000;
    pipeline = await startPipeline('e2e-durability', { services: ['ingestor', 'warehouse-loader'], fsync: FSYNC });
    const running = pipeline;
    expect(running.nats.fsync).toBe(FSYNC);
    const runId = Date.now().toString(36);
    const occurredAt = new Date(Date.now() - 60_000);
    const started = Date.now();

    // The broker is killed after a number of acknowledged batches, so the kills fall in the middle of the traffic.
    let acknowledgedBatches = 0;
    const crashes: Array<{ afterBatches: number; batchesAtRestart: number }> = [];
    let nextKill: () => void = () => undefined;
    const killer = (async () => {
      for (const threshold of KILL_AFTER_BATCHES) {
        await new Promise<void>((resolve) => {
          nextKill = () => acknowledgedBatches >= threshold && resolve();
          nextKill();
        });
        await running.nats.kill();
        await new Promise((resolve) => setTimeout(resolve, DOWN_MS));
        await running.nats.start();
        crashes.push({ afterBatches: threshold, batchesAtRestart: acknowledgedBatches });
      }
    })();

    const outcomes: SendOutcome[] = await Promise.all(
      Array.from({ length: SENDERS }, (_, sender) =>
        sendBatches(() => running.address('ingestor'), batchesOf(sender, runId, occurredAt), {
          dueAt: (batch) => started + batch * BATCH_INTERVAL_MS,
          deadlineMs,
          onBatch: () => {
            acknowledgedBatches++;
            nextKill();
          },
        }),
      ),
    );
    await killer;
    const sent = SENDERS * BATCHES_PER_SENDER * RECORDS_PER_BATCH;
    const accepted = new Set(outcomes.flatMap((outcome) => [...outcome.accepted]));
    const duplicates = outcomes.reduce((sum, outcome) => sum + outcome.duplicate, 0);
    const retries = outcomes.flatMap((outcome) => [...outcome.retries]);
    console.log(
      `broker crash test (fsync ${FSYNC}): ${sent} records, ${accepted.size} ACCEPTED, ${duplicates} DUPLICATE on a retry; ` +
        `kills after batches ${JSON.stringify(crashes)}; what stations saw and retried: ${JSON.stringify(retries)}`,
    );

    // Both kills came while batches were still being sent, and stations saw them (errors / UNAVAILABLE, then retried).
    expect(crashes.map((crash) => crash.afterBatches)).toEqual(KILL_AFTER_BATCHES);
    expect(crashes.every((crash) => crash.batchesAtRestart < SENDERS * BATCHES_PER_SENDER)).toBe(true);
    expect(retries.length).toBeGreaterThan(0);
    // Every record got a final answer: ACCEPTED, or DUPLICATE for a retried one that had landed.
    expect(outcomes.every((outcome) => outcome.rejected.size === 0)).toBe(true);
    expect(accepted.size + duplicates).toBe(sent);

    // The stream: every sent record exactly once (so every ACCEPTED one), nothing else.
    const stored = (await readTransactionStream(running.jsm)).filter((record) => record.transaction?.transactionId.startsWith(`${runId}-`));
    const storedIds = new Set(stored.map((record) => record.transaction?.transactionId ?? ''));
    expect(stored.length).toBe(sent);
    expect(storedIds.size).toBe(sent);
    expect([...accepted].filter((id) => !storedIds.has(id))).toEqual([]);

    // The warehouse: the raw table holds each record exactly once (not only the FINAL view).
    const address = running.address('warehouse-loader');
    let counts: unknown[][] = [];
    await waitFor(
      async () => {
        counts = await queryWarehouse(address, `SELECT count(), uniqExact(station_id, transaction_id) FROM tolls.transactions WHERE startsWith(transaction_id, '${runId}-')`).catch(() => []);
        return Number(counts[0]?.[0]) >= sent;
      },
      { timeoutMs: Math.max(5_000, deadlineMs - Date.now()), intervalMs: 1_000, description: `${sent} rows of this run in tolls.transactions` },
    );
    expect(counts[0]?.map(Number)).toEqual([sent, sent]);
    const viewIds = new Set((await warehouseTransactionIds(address)).filter((id) => id.includes(`/${runId}-`)).map((id) => id.split('/')[1]));
    expect(viewIds.size).toBe(sent);
    expect([...accepted].filter((id) => !viewIds.has(id))).toEqual([]);
  }, 150_000);
});
