import { CustomerSpendBatch, type CustomerSpendWindow, type SpendingThresholdCommand } from '@tollstream/contracts';
import fc from 'fast-check';
import { BillingShard, type BillingShardOptions, type ShardOutput } from './billing-shard';
import { monthOf } from './months';
import { spendBatchInputOf } from './spend-batch-reader';

const BASE_MS = Date.UTC(2026, 10, 30, 23, 59, 57); // 3 s before December (UTC): windows fall in two months
const OPTIONS: BillingShardOptions = {
  shard: 0,
  policy: { operatorTimeZone: 'UTC', ledgerRetentionMs: 35 * 86_400_000 },
  maxThresholdMinor: 100_000_000,
  gapTimeoutMs: 3_600_000,
  maxHeldBatches: 10_000,
};
const ACCOUNTS = ['acct-1', 'acct-2', 'acct-3', 'acct-4'];

type StreamRecord = { kind: 'batch'; batch: CustomerSpendBatch } | { kind: 'command'; command: SpendingThresholdCommand };

interface GeneratedPartition {
  batches: CustomerSpendBatch[];
  /** Final amount per account/month after every revision, plus late spend. */
  totals: Map<string, number>;
}

/** A windower partition's chain of spend batches to shard 0: revisions grow, final_before advances, late transactions. */
const partitionArbitrary = (partition: number) =>
  fc
    .array(
      fc.record({
        windows: fc.array(fc.record({ account: fc.constantFrom(...ACCOUNTS), offset: fc.integer({ min: 0, max: 3 }), amount: fc.integer({ min: 0, max: 500 }) }), { maxLength: 4 }),
        late: fc.array(fc.record({ account: fc.constantFrom(...ACCOUNTS), amount: fc.integer({ min: 1, max: 300 }) }), { maxLength: 1 }),
        secondChunk: fc.boolean(),
      }),
      { minLength: 1, maxLength: 10 },
    )
    .map((steps): GeneratedPartition => {
      const cumulative = new Map<string, { revision: number; amount: number; count: number }>();
      const totals = new Map<string, number>();
      const batches: CustomerSpendBatch[] = [];
      let previous: [number, number] = [0, 0];
      steps.forEach((step, index) => {
        const sequence = (index + 1) * 10 + partition;
        const finalBeforeMs = BASE_MS + Math.floor(index / 3) * 1000;
        const windows: CustomerSpendWindow[] = [];
        const seen = new Set<string>();
        for (const { account, offset, amount } of step.windows) {
          // Only windows not yet final: their end is after final_before.
          const startMs = finalBeforeMs + offset * 1000;
          const key = `${account}/${startMs}`;
          if (seen.has(key)) continue;
          seen.add(key);
          const before = cumulative.get(key) ?? { revision: 0, amount: 0, count: 0 };
          const next = { revision: before.revision + 1, amount: before.amount + amount, count: before.count + 1 };
          cumulative.set(key, next);
          windows.push({
            resultId: `spend/${account}/USD/p${partition}/${startMs}-${startMs + 1000}/r${next.revision}`,
            accountId: account,
            currency: 'USD',
            windowStart: new Date(startMs),
            windowEnd: new Date(startMs + 1000),
            amountMinor: next.amount,
            transactionCount: next.count,
            revision: next.revision,
            sourcePartition: partition,
            lastOccurredAt: new Date(startMs + 500),
          });
        }
        const lateTransactions = step.late.map(({ account, amount }, lateIndex) => ({
          transaction: {
            transactionId: `late-${partition}-${index}-${lateIndex}`,
            stationId: 'st-1',
            laneId: '1',
            tagId: '',
            plate: '',
            accountId: account,
            vehicleClass: 1,
            amountMinor: amount,
            currency: 'USD',
            occurredAt: new Date(BASE_MS - 60_000),
          },
          ingestedAt: new Date(BASE_MS),
          partition,
        }));
        for (const late of step.late) {
          const key = `${late.account}/${monthOf(BASE_MS - 60_000, 'UTC')}`;
          totals.set(key, (totals.get(key) ?? 0) + late.amount);
        }
        const chunks = step.secondChunk && windows.length > 1 ? [windows.slice(0, 1), windows.slice(1)] : [windows];
        chunks.forEach((chunkWindows, chunk) => {
          batches.push(
            CustomerSpendBatch.fromPartial({
              batchId: `spend-${partition}-${sequence}-0-${chunk}`,
              sourcePartition: partition,
              inputSequence: sequence,
              chunk,
              previousInputSequence: previous[0],
              previousChunk: previous[1],
              watermark: new Date(finalBeforeMs),
              finalBefore: new Date(finalBeforeMs),
              windows: chunkWindows,
              lateTransactions: chunk === 0 ? lateTransactions : [],
            }),
          );
          previous = [sequence, chunk];
        });
      });
      for (const [key, value] of cumulative) {
        const [account, startMs] = key.split('/');
        const monthKey = `${account}/${monthOf(Number(startMs), 'UTC')}`;
        totals.set(monthKey, (totals.get(monthKey) ?? 0) + value.amount);
      }
      return { batches, totals };
    });

/** The shard's stream: both partitions interleaved, with repeats, swapped neighbours (gaps) and threshold commands. */
const streamArbitrary = fc
  .record({
    partitions: fc.tuple(partitionArbitrary(0), partitionArbitrary(1)),
    interleaving: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
    repeats: fc.array(fc.nat(), { maxLength: 4 }),
    swaps: fc.array(fc.nat(), { maxLength: 3 }),
    commands: fc.array(fc.record({ at: fc.nat(), account: fc.constantFrom(...ACCOUNTS), amount: fc.option(fc.integer({ min: 1, max: 1500 }), { nil: undefined }), currency: fc.constant('USD') }), {
      maxLength: 5,
    }),
  })
  .map(({ partitions, interleaving, repeats, swaps, commands }) => {
    const queues = partitions.map((p) => [...p.batches]);
    const records: StreamRecord[] = [];
    let turn = 0;
    while (queues.some((queue) => queue.length > 0)) {
      const pick = queues[0].length === 0 ? 1 : queues[1].length === 0 ? 0 : interleaving[turn++ % interleaving.length] ? 1 : 0;
      records.push({ kind: 'batch', batch: queues[pick].shift() as CustomerSpendBatch });
    }
    for (const swap of swaps) {
      const i = swap % records.length;
      const j = records.findIndex((record, index) => index > i && record.kind === 'batch' && (records[i] as { batch: CustomerSpendBatch }).batch.sourcePartition === record.batch.sourcePartition);
      if (j > 0) [records[i], records[j]] = [records[j], records[i]];
    }
    for (const repeat of repeats) {
      const source = records[repeat % records.length];
      records.splice(Math.min(records.length, (repeat % records.length) + 1 + (repeat % 3)), 0, source);
    }
    commands.forEach(({ at, account, amount, currency }, index) => {
      const command: SpendingThresholdCommand = {
        commandId: `cmd-${index}`,
        accountId: account,
        threshold: amount === undefined ? undefined : { amountMinor: amount, currency },
        replySubject: `reply.${index}`,
      };
      records.splice(at % (records.length + 1), 0, { kind: 'command', command });
    });
    const totals = new Map<string, number>();
    for (const p of partitions) for (const [key, value] of p.totals) totals.set(key, (totals.get(key) ?? 0) + value);
    return { records, totals };
  });

const logTimeOf = (sequence: number) => BASE_MS + sequence * 100;

function applyRecord(shard: BillingShard, sequence: number, record: StreamRecord): ShardOutput {
  return record.kind === 'batch'
    ? shard.applySpendBatch(sequence, logTimeOf(sequence), spendBatchInputOf(record.batch))
    : shard.applyThresholdCommand(sequence, logTimeOf(sequence), record.command, new Uint8Array());
}

const serialized = (output: ShardOutput) => JSON.stringify(output, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value));

function snapshotRoundTrip(shard: BillingShard): BillingShard {
  const frames = [...shard.snapshotFrames(2)].map((frame) => ({ kind: frame.kind, data: Uint8Array.from(frame.data) }));
  return BillingShard.restore(OPTIONS, frames);
}

function totalsOf(shard: BillingShard): Map<string, number> {
  const totals = new Map<string, number>();
  for (const account of ACCOUNTS) {
    for (const month of shard.account(account)?.months ?? []) if (month.totalMinor !== 0) totals.set(`${account}/${month.month}`, month.totalMinor);
  }
  return totals;
}

describe('BillingShard (the state machine of one spend shard)', () => {
  it('totals are exactly the final revisions plus late spend, whatever the interleaving, repeats and gaps', () => {
    fc.assert(
      fc.property(streamArbitrary, ({ records, totals }) => {
        const shard = new BillingShard(OPTIONS);
        records.forEach((record, index) => applyRecord(shard, index + 1, record));
        expect(shard.heldBatches).toBe(0);
        const expected = new Map([...totals].filter(([, value]) => value !== 0));
        expect(Object.fromEntries(totalsOf(shard))).toEqual(Object.fromEntries(expected));
      }),
      { numRuns: 300 },
    );
  });

  it('snapshot + restore + replay from the snapshot gives exactly the outputs of an uninterrupted run', () => {
    fc.assert(
      fc.property(streamArbitrary, fc.nat(), fc.nat(), ({ records }, snapshotAtSeed, crashAfterSeed) => {
        const uninterrupted = new BillingShard(OPTIONS);
        const expected = records.map((record, index) => serialized(applyRecord(uninterrupted, index + 1, record)));

        const snapshotAt = snapshotAtSeed % (records.length + 1);
        const crashAfter = snapshotAt + (crashAfterSeed % (records.length - snapshotAt + 1));
        const first = new BillingShard(OPTIONS);
        for (let i = 0; i < snapshotAt; i++) applyRecord(first, i + 1, records[i]);
        const snapshot = [...first.snapshotFrames(3)].map((frame) => ({ kind: frame.kind, data: Uint8Array.from(frame.data) }));
        // Outputs after the snapshot, then a crash: the restored shard applies those records again.
        for (let i = snapshotAt; i < crashAfter; i++) applyRecord(first, i + 1, records[i]);
        const restored = BillingShard.restore(OPTIONS, snapshot);
        expect(restored.lastSequence).toBe(snapshotAt);
        const replayed = records.slice(snapshotAt).map((record, offset) => serialized(applyRecord(restored, snapshotAt + offset + 1, record)));
        expect(replayed).toEqual(expected.slice(snapshotAt));
        expect(Object.fromEntries(totalsOf(restored))).toEqual(Object.fromEntries(totalsOf(uninterrupted)));
      }),
      { numRuns: 300 },
    );
  });

  it('a live snapshot read while the shard goes on applying holds exactly the state of its position (copy on write)', () => {
    const bytes = (frames: Iterable<{ kind: string; data: Uint8Array }>) => [...frames].map((frame) => `${frame.kind}:${Buffer.from(frame.data).toString()}`);
    fc.assert(
      fc.property(streamArbitrary, fc.nat(), fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), ({ records }, snapshotAtSeed, stepsSeeds) => {
        const snapshotAt = snapshotAtSeed % (records.length + 1);
        const shard = new BillingShard(OPTIONS);
        const reference = new BillingShard(OPTIONS);
        for (let i = 0; i < snapshotAt; i++) {
          applyRecord(shard, i + 1, records[i]);
          applyRecord(reference, i + 1, records[i]);
        }
        // Accounts one to a frame, so that records are applied between the frames' encodings.
        const expected = bytes(reference.snapshotFrames(1));
        const live = shard.liveSnapshotFrames(1)[Symbol.iterator]();
        const read: Array<{ kind: string; data: Uint8Array }> = [];
        let next = snapshotAt;
        let step = 0;
        for (let frame = live.next(); !frame.done; frame = live.next()) {
          read.push(frame.value);
          const apply = stepsSeeds[step++ % stepsSeeds.length] % 4;
          for (let k = 0; k < apply && next < records.length; k++, next++) applyRecord(shard, next + 1, records[next]);
        }
        expect(bytes(read)).toEqual(expected);
        // And the shard itself went on exactly like an uninterrupted one.
        for (let i = snapshotAt; i < next; i++) applyRecord(reference, i + 1, records[i]);
        expect(bytes(shard.snapshotFrames(1))).toEqual(bytes(reference.snapshotFrames(1)));
        const restored = BillingShard.restore(OPTIONS, read);
        expect(restored.lastSequence).toBe(snapshotAt);
      }),
      { numRuns: 300 },
    );
  });

  it('the changed records of every flush, folded by position, are the read model of the state (after a restore too)', () => {
    fc.assert(
      fc.property(streamArbitrary, fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), fc.nat(), ({ records }, flushSeeds, restoreSeed) => {
        // The read model as a store holds it: per record key, the copy of the highest position.
        const model = new Map<string, { position: number; text: string }>();
        const fold = (changes: ReturnType<BillingShard['takeChangedRecords']>) => {
          for (const record of [...changes.accounts, ...changes.months]) {
            const key = 'month' in record ? `${record.accountId}/${record.month}` : record.accountId;
            const held = model.get(key);
            if (!held || record.position >= held.position) model.set(key, { position: record.position, text: JSON.stringify(record) });
          }
        };
        let shard = new BillingShard(OPTIONS);
        let flushed = 0;
        const restoreAt = restoreSeed % (records.length + 1);
        for (let i = 0; i < records.length; i++) {
          if (i === restoreAt) {
            // A restart: the last snapshot (now), the read model as last flushed; what it may lack is marked again.
            shard = snapshotRoundTrip(shard);
            shard.markChangedAfter(flushed);
          }
          applyRecord(shard, i + 1, records[i]);
          if (flushSeeds[i % flushSeeds.length] % 3 === 0) {
            fold(shard.takeChangedRecords(flushed));
            flushed = i + 1;
          }
        }
        fold(shard.takeChangedRecords(flushed));
        for (const account of ACCOUNTS) {
          const record = shard.accountRecord(account);
          if (record) expect(model.get(account)?.text).toBe(JSON.stringify(record));
          for (const month of shard.account(account)?.months ?? []) {
            expect(model.get(`${account}/${month.month}`)?.text).toBe(JSON.stringify(shard.monthRecord(account, month.month)));
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a live snapshot superseded by another fails instead of mixing positions', () => {
    const shard = new BillingShard(OPTIONS);
    shard.applyThresholdCommand(1, BASE_MS, { commandId: 'c1', accountId: 'acct-1', threshold: { amountMinor: 100, currency: 'USD' }, replySubject: '' }, new Uint8Array());
    shard.applyThresholdCommand(2, BASE_MS, { commandId: 'c2', accountId: 'acct-2', threshold: { amountMinor: 100, currency: 'USD' }, replySubject: '' }, new Uint8Array());
    const first = shard.liveSnapshotFrames(1)[Symbol.iterator]();
    expect(first.next().value?.kind).toBe('header');
    expect(first.next().value?.kind).toBe('accounts');
    expect([...shard.liveSnapshotFrames(1)].map((frame) => frame.kind)).toEqual(['header', 'accounts', 'accounts']);
    expect(() => first.next()).toThrow(/superseded/);
  });

  it('raises exactly one alert per account, month and threshold version, and only when the total reaches the threshold', () => {
    fc.assert(
      fc.property(streamArbitrary, fc.integer({ min: 1, max: 1500 }), ({ records, totals }, amount) => {
        const shard = new BillingShard(OPTIONS);
        let sequence = 0;
        const alerts: string[] = [];
        for (const accountId of ACCOUNTS) {
          const output = shard.applyThresholdCommand(++sequence, BASE_MS - 120_000, { commandId: accountId, accountId, threshold: { amountMinor: amount, currency: 'USD' }, replySubject: '' }, new Uint8Array());
          alerts.push(...output.alerts.map((alert) => alert.id));
        }
        for (const record of records.filter((r) => r.kind === 'batch')) alerts.push(...applyRecord(shard, ++sequence, record).alerts.map((alert) => alert.id));
        expect(new Set(alerts).size).toBe(alerts.length);
        // Revisions only grow here, so a month reaches the threshold iff its final total does.
        const expected = [...totals].filter(([, total]) => total >= amount).map(([key]) => {
          const [account, month] = key.split('/');
          return `spending/${account}/${month}/v1`;
        });
        expect(alerts.sort()).toEqual(expected.sort());
      }),
      { numRuns: 300 },
    );
  });

  describe('threshold commands in the shard order', () => {
    const window = (account: string, amount: number, revision = 1): CustomerSpendWindow => ({
      resultId: `spend/${account}/USD/p0/${BASE_MS + 5000}-${BASE_MS + 6000}/r${revision}`,
      accountId: account,
      currency: 'USD',
      windowStart: new Date(BASE_MS + 5000),
      windowEnd: new Date(BASE_MS + 6000),
      amountMinor: amount,
      transactionCount: 1,
      revision,
      sourcePartition: 0,
      lastOccurredAt: new Date(BASE_MS + 5500),
    });
    const batch = (sequence: number, previous: number, windows: CustomerSpendWindow[]) =>
      spendBatchInputOf(CustomerSpendBatch.fromPartial({ batchId: `b${sequence}`, sourcePartition: 0, inputSequence: sequence, chunk: 0, previousInputSequence: previous, previousChunk: 0, windows }));
    const set = (accountId: string, amountMinor: number | undefined, currency = 'USD'): SpendingThresholdCommand => ({
      commandId: `c-${accountId}-${amountMinor}`,
      accountId,
      threshold: amountMinor === undefined ? undefined : { amountMinor, currency },
      replySubject: 'reply',
    });

    it('set, raised, cleared and set below the current total: the alerts the rule defines', () => {
      const shard = new BillingShard(OPTIONS);
      const t = BASE_MS + 10_000;
      const first = shard.applyThresholdCommand(1, t, set('a', 1000), new Uint8Array());
      expect(first.commandOutcome).toMatchObject({ accepted: true, changed: true, breachedNow: false, threshold: { version: 1, amountMinor: 1000 } });
      expect(first.thresholdEvents.map((e) => e.id)).toEqual(['threshold/a/v1']);
      expect(shard.applySpendBatch(2, t, batch(10, 0, [window('a', 1200)])).alerts.map((a) => a.id)).toEqual(['spending/a/2026-12/v1']);
      // The same amount again (a retry after a lost reply): no new version, no new alert, and the alert as it stands.
      const again = shard.applyThresholdCommand(3, t, set('a', 1000), new Uint8Array());
      expect(again.commandOutcome).toMatchObject({ accepted: true, changed: false, breachedNow: true });
      expect(again.alerts).toEqual([]);
      // Raised above the total: v2, crossed again later by an amendment.
      expect(shard.applyThresholdCommand(4, t, set('a', 1500), new Uint8Array()).alerts).toEqual([]);
      expect(shard.applySpendBatch(5, t, batch(20, 10, [window('a', 1600, 2)])).alerts.map((a) => a.id)).toEqual(['spending/a/2026-12/v2']);
      // Cleared: v3, never alerts.
      expect(shard.applyThresholdCommand(6, t, set('a', undefined), new Uint8Array()).thresholdEvents.map((e) => e.id)).toEqual(['threshold/a/v3']);
      expect(shard.applySpendBatch(7, t, batch(30, 20, [window('a', 1700, 3)])).alerts).toEqual([]);
      // Set below the current total: the alert at once, breach time = when it was set.
      const below = shard.applyThresholdCommand(8, t + 1, set('a', 100), new Uint8Array());
      expect(below.commandOutcome).toMatchObject({ accepted: true, changed: true, breachedNow: true });
      expect(below.alerts).toMatchObject([{ id: 'spending/a/2026-12/v4', breachedAtMs: t + 1, totalMinor: 1700 }]);
      expect(shard.account('a')?.months.find((m) => m.month === '2026-12')?.totalMinor).toBe(1700);
    });

    it('rejects a threshold in another currency than the account, with the field', () => {
      const shard = new BillingShard(OPTIONS);
      shard.applySpendBatch(1, BASE_MS, batch(10, 0, [window('a', 10)]));
      const output = shard.applyThresholdCommand(2, BASE_MS, set('a', 500, 'EUR'), new Uint8Array());
      expect(output.commandOutcome).toMatchObject({ accepted: false, rejectionField: 'threshold.currency', rejectionReason: "must be the account's currency USD" });
      expect(output.thresholdEvents).toEqual([]);
    });

    it('a spend batch in another currency than the account is dead-lettered, never added', () => {
      const shard = new BillingShard(OPTIONS);
      shard.applySpendBatch(1, BASE_MS, batch(10, 0, [window('a', 10)]));
      const euro = { ...window('a', 99), currency: 'EUR', resultId: `spend/a/EUR/p0/${BASE_MS + 5000}-${BASE_MS + 6000}/r1` };
      const output = shard.applySpendBatch(2, BASE_MS, batch(20, 10, [euro]));
      expect(output.deadLetters.map((d) => d.reasonCode)).toEqual(['CURRENCY_MISMATCH']);
      expect(shard.account('a')?.months[0].totalMinor).toBe(10);
    });
  });

  describe('the chain of a partition', () => {
    const message = (sequence: number, previous: number, amount: number) =>
      CustomerSpendBatch.fromPartial({
        batchId: `b${sequence}`,
        sourcePartition: 0,
        inputSequence: sequence,
        chunk: 0,
        previousInputSequence: previous,
        previousChunk: 0,
        windows: [
          {
            resultId: `spend/a/USD/p0/${BASE_MS + sequence * 1000}-${BASE_MS + sequence * 1000 + 1000}/r1`,
            accountId: 'a',
            currency: 'USD',
            windowStart: new Date(BASE_MS + sequence * 1000),
            windowEnd: new Date(BASE_MS + sequence * 1000 + 1000),
            amountMinor: amount,
            transactionCount: 1,
            revision: 1,
            sourcePartition: 0,
            lastOccurredAt: new Date(BASE_MS + sequence * 1000),
          },
        ],
      });
    const batch = (sequence: number, previous: number, amount: number) => spendBatchInputOf(message(sequence, previous, amount));
    const total = (shard: BillingShard) => shard.account('a')?.months.reduce((sum, m) => sum + m.totalMinor, 0) ?? 0;

    it('holds a batch that came before its predecessor, and applies both in order when it comes', () => {
      const shard = new BillingShard(OPTIONS);
      shard.applySpendBatch(1, BASE_MS, batch(10, 0, 1));
      expect(shard.applySpendBatch(2, BASE_MS, batch(30, 20, 100)).outcomes).toEqual({ 'batch-held': 1 });
      expect(total(shard)).toBe(1);
      expect(shard.applySpendBatch(3, BASE_MS, batch(20, 10, 10)).outcomes).toEqual({ applied: 2 });
      expect(total(shard)).toBe(111);
      // A repeat after all of them (a replay beyond the broker's duplicate window) changes nothing.
      expect(shard.applySpendBatch(4, BASE_MS, batch(30, 20, 100)).outcomes).toEqual({ 'batch-repeated': 1 });
      expect(total(shard)).toBe(111);
    });

    it('gives up waiting after the gap timeout, and still applies the missing batch exactly once when it comes', () => {
      const shard = new BillingShard({ ...OPTIONS, gapTimeoutMs: 60_000 });
      shard.applySpendBatch(1, BASE_MS, batch(10, 0, 1));
      shard.applySpendBatch(2, BASE_MS, batch(30, 20, 100));
      expect(shard.applySpendBatch(3, BASE_MS + 61_000, batch(40, 30, 1000)).outcomes).toEqual({ 'batch-held': 1, 'gap-released': 1, applied: 2 });
      expect(total(shard)).toBe(1101);
      expect(shard.applySpendBatch(4, BASE_MS + 62_000, batch(20, 10, 10)).outcomes).toEqual({ applied: 1 });
      expect(shard.applySpendBatch(5, BASE_MS + 63_000, batch(20, 10, 10)).outcomes).toEqual({ 'batch-repeated': 1 });
      expect(total(shard)).toBe(1111);
    });

    it('forgets what it applied for windows once the partition says they are final', () => {
      const shard = new BillingShard(OPTIONS);
      shard.applySpendBatch(1, BASE_MS, batch(10, 0, 1));
      expect(shard.revisableWindows).toBe(1);
      const final = spendBatchInputOf({ ...message(20, 10, 5), finalBefore: new Date(BASE_MS + 11_000) });
      shard.applySpendBatch(2, BASE_MS, final);
      expect(shard.revisableWindows).toBe(1); // the window of batch 20 ends after final_before; batch 10's is forgotten
      expect(snapshotRoundTrip(shard).revisableWindows).toBe(1);
    });
  });
});
