import type { IngestedTransaction } from '@tollstream/contracts';
import fc from 'fast-check';

/**
 * Ingested transactions for the fast-path property tests, ordinary and not (missing parts, negative
 * numbers, unknown vehicle classes), from the given texts and instants (undefined: missing).
 */
export function ingestedTransactions(text: fc.Arbitrary<string>, instant: fc.Arbitrary<Date | undefined>): fc.Arbitrary<IngestedTransaction> {
  return fc.record({
    transaction: fc.option(
      fc.record({
        transactionId: text,
        stationId: text,
        laneId: text,
        tagId: text,
        plate: text,
        accountId: text,
        vehicleClass: fc.integer({ min: -2, max: 40 }),
        amountMinor: fc.oneof(fc.integer({ min: 0, max: 1e9 }), fc.integer({ min: -1e6, max: -1 }), fc.constant(Number.MAX_SAFE_INTEGER)),
        currency: text,
        occurredAt: instant,
      }),
      { nil: undefined },
    ),
    ingestedAt: instant,
    partition: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  });
}
