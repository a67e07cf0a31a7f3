import {
  CustomerSpendBatch,
  type IngestedTransaction,
  StationTrafficBatch,
  TransactionBatch,
  VehicleClass,
} from '@tollstream/contracts';
import { aTollTransaction } from '@tollstream/testing';
import { PartitionProcessor, type OutgoingMessage, type PartitionProcessorOptions } from './partition-processor';

const T0 = Date.parse('2026-11-23T10:00:00Z');

const options: PartitionProcessorOptions = {
  partition: 3,
  customerSpend: { window: { kind: 'tumbling', sizeMs: 1_000 }, outOfOrdernessMs: 500, allowedLatenessMs: 5_000 },
  stationTraffic: { window: { kind: 'tumbling', sizeMs: 30 * 60_000 }, outOfOrdernessMs: 500, allowedLatenessMs: 60 * 60_000 },
  idleTimeoutMs: 2_000,
  stationTimeZone: (station) => (station === 'st-ktm' ? 'Asia/Kathmandu' : 'UTC'),
  spendShards: 4,
  maxResultsPerMessage: 2,
  watermarkPublishIntervalMs: 1_000,
};

let transactionNumber = 0;
function ingested(at: number, overrides: Parameters<typeof aTollTransaction>[0] = {}): IngestedTransaction {
  transactionNumber++;
  return {
    transaction: aTollTransaction({ transactionId: `tx-${transactionNumber}`, occurredAt: new Date(at), ...overrides }),
    ingestedAt: new Date(at),
    partition: 3,
  };
}

const batch = (...transactions: IngestedTransaction[]) => TransactionBatch.encode({ batchId: `b-${transactionNumber}`, transactions }).finish();
const heartbeat = () => TransactionBatch.encode({ batchId: 'heartbeat', transactions: [] }).finish();

const spendWindows = (messages: OutgoingMessage[]) =>
  messages.filter((m) => m.subject.startsWith('tolls.agg.spend.')).flatMap((m) => CustomerSpendBatch.decode(m.payload).windows);
const trafficBatches = (messages: OutgoingMessage[]) =>
  messages.filter((m) => m.subject.startsWith('tolls.agg.traffic.')).map((m) => StationTrafficBatch.decode(m.payload));

describe('PartitionProcessor', () => {
  it('emits customer spend per account and currency when the watermark closes the window, sharded by account', () => {
    const processor = PartitionProcessor.create(options);
    processor.process(1, T0, batch(ingested(T0 + 100, { accountId: 'acct-1', amountMinor: 250 }), ingested(T0 + 200, { accountId: 'acct-1', amountMinor: 300 })));
    const out = processor.process(2, T0 + 2_000, batch(ingested(T0 + 1_600, { accountId: 'acct-2', amountMinor: 100 })));
    const windows = spendWindows(out.messages);
    expect(windows).toHaveLength(1);
    expect(windows[0]).toMatchObject({
      accountId: 'acct-1',
      currency: 'USD',
      amountMinor: 550,
      transactionCount: 2,
      revision: 1,
      sourcePartition: 3,
      resultId: `spend/acct-1/USD/p3/${T0}-${T0 + 1_000}/r1`,
    });
    expect(windows[0].windowStart?.getTime()).toBe(T0);
    expect(windows[0].lastOccurredAt?.getTime()).toBe(T0 + 200);
    const spendMessage = out.messages.find((m) => m.subject.startsWith('tolls.agg.spend.'));
    expect(spendMessage?.msgId).toMatch(/^spend-3-2-\d-0$/);
  });

  it('amends a closed window with the full corrected value, and sends records later than the lateness to the late subject', () => {
    const processor = PartitionProcessor.create(options);
    processor.process(1, T0, batch(ingested(T0 + 100, { accountId: 'acct-1', amountMinor: 250 })));
    processor.process(2, T0 + 2_000, batch(ingested(T0 + 2_000, { accountId: 'acct-9' })));
    const amended = processor.process(3, T0 + 2_100, batch(ingested(T0 + 300, { accountId: 'acct-1', amountMinor: 50 })));
    expect(spendWindows(amended.messages)).toEqual([
      expect.objectContaining({ accountId: 'acct-1', amountMinor: 300, transactionCount: 2, revision: 2 }),
    ]);
    processor.process(4, T0 + 9_000, batch(ingested(T0 + 9_000, { accountId: 'acct-9' })));
    const tooLate = processor.process(5, T0 + 9_100, batch(ingested(T0 + 400, { accountId: 'acct-1', amountMinor: 70 })));
    expect(tooLate.lateForSpend).toBe(1);
    expect(tooLate.lateForTraffic).toBe(0); // the 30-minute slot still takes it
    const late = tooLate.messages.find((m) => m.subject === 'tolls.agg.late.spend.3');
    expect(late?.msgId).toBe('late-spend-3-5');
    expect(TransactionBatch.decode(late?.payload ?? new Uint8Array()).transactions[0].transaction?.amountMinor).toBe(70);
  });

  it('counts station traffic per 30-minute slot of the station zone, by vehicle class, and tells the watermark without windows', () => {
    const processor = PartitionProcessor.create(options);
    const first = processor.process(
      1,
      T0,
      batch(
        ingested(T0 + 60_000, { stationId: 'st-ktm', vehicleClass: VehicleClass.VEHICLE_CLASS_BUS }),
        ingested(T0 + 61_000, { stationId: 'st-ktm' }),
        ingested(T0 + 62_000, { stationId: 'st-ktm', accountId: '' }),
      ),
    );
    expect(first.withoutAccount).toBe(1);
    const watermarkOnly = trafficBatches(first.messages);
    expect(watermarkOnly).toHaveLength(1);
    expect(watermarkOnly[0].windows).toEqual([]);
    expect(watermarkOnly[0].watermark?.getTime()).toBe(T0 + 62_000 - 500);
    // The watermark did not move: nothing to tell.
    expect(processor.process(2, T0 + 3_000, heartbeat()).messages).toEqual([]);
    // Idle: the log time moves on 40 minutes without records; the slot 09:45-10:15 UTC (15:30-16:00 in +05:45) closes.
    const closed = trafficBatches(processor.process(3, T0 + 40 * 60_000, heartbeat()).messages).flatMap((b) => b.windows);
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ stationId: 'st-ktm', vehicleCount: 3, timeZone: 'Asia/Kathmandu', revision: 1 });
    expect(closed[0].windowStart?.toISOString()).toBe('2026-11-23T09:45:00.000Z');
    expect(closed[0].countsByClass).toEqual([
      { vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, vehicleCount: 2 },
      { vehicleClass: VehicleClass.VEHICLE_CLASS_BUS, vehicleCount: 1 },
    ]);
  });

  it('reports an undecodable input message and keeps going', () => {
    const processor = PartitionProcessor.create(options);
    const out = processor.process(1, T0, new Uint8Array([0xff, 0xff, 0xff]));
    expect(out.undecodable).toMatch(/not a TransactionBatch/);
    expect(processor.process(2, T0, batch(ingested(T0))).records).toBe(1);
  });

  it('refuses to process an input sequence twice', () => {
    const processor = PartitionProcessor.create(options);
    processor.process(5, T0, batch(ingested(T0)));
    expect(() => processor.process(5, T0, batch(ingested(T0)))).toThrow(/already processed/);
  });

  it('after a snapshot and restore produces byte for byte the same messages as without', () => {
    const inputs: Array<[number, number, Uint8Array]> = [];
    for (let i = 1; i <= 60; i++) {
      const at = T0 + i * 370;
      inputs.push([
        i,
        at,
        i % 7 === 0
          ? heartbeat()
          : batch(
              ingested(at, { accountId: `acct-${i % 5}`, stationId: `st-${i % 3}` }),
              ingested(at - (i % 4) * 900, { accountId: `acct-${i % 3}`, stationId: 'st-ktm', amountMinor: i }),
            ),
      ]);
    }
    const straight = PartitionProcessor.create(options);
    const expected = inputs.map(([seq, at, data]) => straight.process(seq, at, data).messages);
    for (const cut of [0, 1, 17, 42, 59]) {
      const first = PartitionProcessor.create(options);
      const produced = inputs.slice(0, cut).map(([seq, at, data]) => first.process(seq, at, data).messages);
      const restored = PartitionProcessor.restore(options, [...first.snapshotFrames()]);
      expect(restored.lastSequence).toBe(cut);
      produced.push(...inputs.slice(cut).map(([seq, at, data]) => restored.process(seq, at, data).messages));
      expect(produced).toEqual(expected);
    }
  });

  it('rejects a snapshot of another partition', () => {
    const frames = [...PartitionProcessor.create(options).snapshotFrames()];
    expect(() => PartitionProcessor.restore({ ...options, partition: 4 }, frames)).toThrow(/partition 3, not 4/);
  });

  it('chains the spend batches of each shard (predecessor positions), marks what is final, and carries late spend to its shard', () => {
    const processor = PartitionProcessor.create(options);
    const spendBatches = (messages: OutgoingMessage[]) =>
      messages.filter((m) => m.subject.startsWith('tolls.agg.spend.')).map((m) => ({ shard: Number(m.subject.split('.').at(-1)), batch: CustomerSpendBatch.decode(m.payload) }));
    const sent: Array<{ shard: number; batch: CustomerSpendBatch }> = [];
    const accounts = ['acct-1', 'acct-2', 'acct-3', 'acct-4', 'acct-5', 'acct-6'];
    sent.push(...spendBatches(processor.process(1, T0, batch(...accounts.map((accountId) => ingested(T0 + 100, { accountId, amountMinor: 100 })))).messages));
    sent.push(...spendBatches(processor.process(2, T0 + 2_000, batch(...accounts.map((accountId) => ingested(T0 + 1_900, { accountId, amountMinor: 10 })))).messages));
    // Far later: the first window is final; a record for it is late and goes with its shard's batch.
    const lateOut = processor.process(3, T0 + 9_000, batch(ingested(T0 + 8_800, { accountId: 'acct-1', amountMinor: 1 }), ingested(T0 + 200, { accountId: 'acct-1', amountMinor: 7 })));
    sent.push(...spendBatches(lateOut.messages));
    expect(sent.length).toBeGreaterThan(accounts.length / options.maxResultsPerMessage);
    // Per shard, each batch names the one before it; the first names (0, 0).
    const lastByShard = new Map<number, [number, number]>();
    for (const { shard, batch: spend } of sent) {
      expect([spend.previousInputSequence, spend.previousChunk]).toEqual(lastByShard.get(shard) ?? [0, 0]);
      lastByShard.set(shard, [spend.inputSequence, spend.chunk]);
      expect(spend.finalBefore?.getTime()).toBe((spend.watermark?.getTime() ?? 0) - options.customerSpend.allowedLatenessMs);
    }
    const late = sent.flatMap(({ batch: spend }) => spend.lateTransactions);
    expect(late.map((transaction) => transaction.transaction?.amountMinor)).toEqual([7]);
    const lateBatch = sent.find(({ batch: spend }) => spend.lateTransactions.length > 0);
    expect(lateBatch?.batch.windows).toEqual([]);
    // Also still on the late subject, for the warehouse and the per-result engine.
    expect(lateOut.messages.some((m) => m.subject === 'tolls.agg.late.spend.3')).toBe(true);

    // A snapshot keeps the chain: the restored processor continues it exactly.
    const restored = PartitionProcessor.restore(options, [...processor.snapshotFrames()]);
    const next = spendBatches(restored.process(4, T0 + 20_000, batch(ingested(T0 + 19_000, { accountId: 'acct-1', amountMinor: 5 }))).messages);
    const again = spendBatches(processor.process(4, T0 + 20_000, batch(ingested(T0 + 19_000, { accountId: 'acct-1', amountMinor: 5 }))).messages);
    expect(next.map(({ batch: spend }) => [spend.previousInputSequence, spend.previousChunk])).toEqual(again.map(({ batch: spend }) => [spend.previousInputSequence, spend.previousChunk]));
    for (const { shard, batch: spend } of next) expect([spend.previousInputSequence, spend.previousChunk]).toEqual(lastByShard.get(shard));
  });
});
