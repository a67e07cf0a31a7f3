import { CustomerSpendBatch, CustomerSpendWindow, VehicleClass } from '@tollstream/contracts';
import fc from 'fast-check';
import { readSpendBatch, SpendBatchDecodeError, spendBatchInputOf } from './spend-batch-reader';

const msOf = (date: Date | undefined) => date?.getTime();

/** What the generated decoder gives, in the reader's terms. */
function expectedOf(data: Uint8Array) {
  const batch = CustomerSpendBatch.decode(data);
  return {
    sourcePartition: batch.sourcePartition,
    inputSequence: batch.inputSequence,
    chunk: batch.chunk,
    previousInputSequence: batch.previousInputSequence,
    previousChunk: batch.previousChunk,
    finalBeforeMs: msOf(batch.finalBefore),
    windows: batch.windows.map((window) => ({
      accountId: window.accountId,
      currency: window.currency,
      windowStartMs: msOf(window.windowStart),
      windowEndMs: msOf(window.windowEnd),
      amountMinor: window.amountMinor,
      transactionCount: window.transactionCount,
      revision: window.revision,
      lastOccurredAtMs: msOf(window.lastOccurredAt),
    })),
    lateTransactions: batch.lateTransactions,
  };
}

function actualOf(data: Uint8Array) {
  const { data: _data, windows, ...rest } = readSpendBatch(data);
  return { ...rest, windows: windows.map(({ byteStart: _start, byteEnd: _end, ...window }) => window) };
}

// Dates a Date holds, including before 1970 and with sub-millisecond parts lost on the way.
const instant = fc.option(fc.integer({ min: -8_640_000_000_000, max: 8_640_000_000_000 }).map((ms) => new Date(ms)), { nil: undefined });
const windowArbitrary = fc.record({
  resultId: fc.string({ maxLength: 40 }),
  accountId: fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom('acct-1', 'ünïcødé', '')),
  currency: fc.oneof(fc.constantFrom('USD', 'EUR', 'usd', '€€€', ''), fc.string({ maxLength: 5 })),
  windowStart: instant,
  windowEnd: instant,
  amountMinor: fc.oneof(fc.integer({ min: -1_000_000, max: 1_000_000 }), fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 49, 2 ** 49 - 1)),
  transactionCount: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  revision: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  sourcePartition: fc.integer({ min: 0, max: 1024 }),
  lastOccurredAt: instant,
});
const batchArbitrary = fc.record({
  batchId: fc.string({ maxLength: 30 }),
  sourcePartition: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  inputSequence: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  watermark: instant,
  windows: fc.array(windowArbitrary, { maxLength: 6 }),
  chunk: fc.nat({ max: 5000 }),
  previousInputSequence: fc.option(fc.nat(), { nil: undefined }),
  previousChunk: fc.option(fc.nat({ max: 5000 }), { nil: undefined }),
  finalBefore: instant,
  lateTransactions: fc.array(
    fc.record({
      transaction: fc.record({
        transactionId: fc.string({ maxLength: 10 }),
        stationId: fc.constant('st-1'),
        accountId: fc.string({ maxLength: 10 }),
        vehicleClass: fc.constant(VehicleClass.VEHICLE_CLASS_CAR),
        amountMinor: fc.nat(),
        currency: fc.constant('USD'),
        occurredAt: instant,
      }),
      ingestedAt: instant,
      partition: fc.nat({ max: 16 }),
    }),
    { maxLength: 2 },
  ),
});

describe('readSpendBatch', () => {
  it('reads what the generated decoder reads, for any batch', () => {
    fc.assert(
      fc.property(batchArbitrary, (batch) => {
        const data = CustomerSpendBatch.encode(CustomerSpendBatch.fromPartial(batch)).finish();
        expect(actualOf(data)).toEqual(expectedOf(data));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps where each window is, so a dead letter carries the window as it came', () => {
    const window = CustomerSpendWindow.fromPartial({ resultId: 'r', accountId: 'acct-1', currency: 'USD', amountMinor: 42, revision: 1, windowStart: new Date(1_000), windowEnd: new Date(2_000) });
    const input = spendBatchInputOf(CustomerSpendBatch.fromPartial({ batchId: 'b', windows: [window, { ...window, accountId: 'acct-2' }] }));
    const second = input.windows[1];
    expect(CustomerSpendWindow.decode(input.data.subarray(second.byteStart, second.byteEnd))).toEqual({ ...window, accountId: 'acct-2', lastOccurredAt: undefined, transactionCount: 0, sourcePartition: 0 });
  });

  it('reads fields it does not know past, and the last of a repeated value wins', () => {
    const base = CustomerSpendBatch.encode(CustomerSpendBatch.fromPartial({ sourcePartition: 3, chunk: 1 })).finish();
    // field 2 again (varint 7), an unknown field 99 of each wire type, field 6 with the wrong wire type (skipped).
    const extra = Uint8Array.from([0x10, 0x07, 0x98, 0x06, 0x01, 0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0x9a, 0x06, 0x02, 0xaa, 0xbb, 0x9d, 0x06, 1, 2, 3, 4, 0x32, 0x01, 0x00]);
    const data = Buffer.concat([base, extra]);
    expect(actualOf(data)).toEqual(expectedOf(data));
    expect(readSpendBatch(data).sourcePartition).toBe(7);
  });

  it('refuses what the generated decoder refuses: truncated input and 64-bit integers beyond the safe range', () => {
    const data = CustomerSpendBatch.encode(CustomerSpendBatch.fromPartial({ windows: [{ accountId: 'acct-1', currency: 'USD', amountMinor: 5 }] })).finish();
    expect(() => readSpendBatch(data.subarray(0, data.length - 2))).toThrow(SpendBatchDecodeError);
    expect(() => CustomerSpendBatch.decode(data.subarray(0, data.length - 2))).toThrow();
    // input_sequence = 2^60
    const huge = Uint8Array.from([0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    expect(() => readSpendBatch(huge)).toThrow(/larger than Number.MAX_SAFE_INTEGER/);
    expect(() => CustomerSpendBatch.decode(huge)).toThrow(/larger than Number.MAX_SAFE_INTEGER/);
  });
});
