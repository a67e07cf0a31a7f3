import { VehicleClass, type TollTransaction } from '@tollstream/contracts';

/** A valid record, for tests; override what the test is about. */
export function aTransaction(overrides: Partial<TollTransaction> = {}): TollTransaction {
  return {
    transactionId: 'tx-1',
    stationId: 'st-001',
    laneId: 'L1',
    tagId: 'TAG-1',
    plate: 'ABC 123',
    accountId: 'acct-1',
    vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
    amountMinor: 250,
    currency: 'USD',
    occurredAt: new Date('2026-11-22T10:00:00Z'),
    ...overrides,
  };
}
