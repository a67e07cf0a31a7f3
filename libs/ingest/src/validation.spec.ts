import { RejectionCode, VehicleClass } from '@tollstream/contracts';
import { aTollTransaction as aTransaction } from '@tollstream/testing';
import { isoCurrencies, validateTransaction, type ValidationPolicy } from './validation';

const now = new Date('2026-11-22T10:05:00Z').getTime();
const policy: ValidationPolicy = {
  maxAmountMinor: 100_000,
  maxClockSkewMs: 60_000,
  acceptanceHorizonMs: 72 * 3600_000,
  currencies: isoCurrencies,
};

describe('validateTransaction', () => {
  it('accepts a complete record', () => {
    expect(validateTransaction(aTransaction(), policy, now)).toBeUndefined();
  });

  it('accepts a plate-only pass without tag and an unknown account', () => {
    expect(validateTransaction(aTransaction({ tagId: '', accountId: '' }), policy, now)).toBeUndefined();
  });

  it.each([
    ['transaction_id', { transactionId: '' }, 'is required'],
    ['transaction_id', { transactionId: 'x'.repeat(129) }, 'longer than 128'],
    ['station_id', { stationId: 'st 1' }, 'may contain only'],
    ['lane_id', { laneId: '' }, 'is required'],
    ['tag_id', { tagId: '', plate: '' }, 'a tag_id or a plate'],
    ['plate', { plate: 'abc' }, 'upper-case'],
    ['plate', { plate: 'A'.repeat(17) }, 'longer than 16'],
    ['vehicle_class', { vehicleClass: VehicleClass.VEHICLE_CLASS_UNSPECIFIED }, 'unknown vehicle class'],
    ['vehicle_class', { vehicleClass: 42 as VehicleClass }, 'unknown vehicle class'],
    ['amount_minor', { amountMinor: -1 }, 'non-negative'],
    ['amount_minor', { amountMinor: 1.5 }, 'non-negative integer'],
    ['amount_minor', { amountMinor: 100_001 }, 'exceeds the maximum of 100000'],
    ['currency', { currency: 'XYZ' }, 'not an accepted ISO 4217'],
    ['currency', { currency: 'usd' }, 'not an accepted ISO 4217'],
    ['occurred_at', { occurredAt: undefined }, 'is required'],
  ])('rejects %s: %j', (field, overrides, reason) => {
    const rejection = validateTransaction(aTransaction(overrides), policy, now);
    expect(rejection?.code).toBe(RejectionCode.REJECTION_CODE_INVALID_FIELD);
    expect(rejection?.field).toBe(field);
    expect(rejection?.reason).toContain(reason);
  });

  it('accepts the maximum amount and zero', () => {
    expect(validateTransaction(aTransaction({ amountMinor: 100_000 }), policy, now)).toBeUndefined();
    expect(validateTransaction(aTransaction({ amountMinor: 0 }), policy, now)).toBeUndefined();
  });

  it('accepts clock skew up to the limit and rejects beyond it as in the future', () => {
    expect(validateTransaction(aTransaction({ occurredAt: new Date(now + 60_000) }), policy, now)).toBeUndefined();
    const rejection = validateTransaction(aTransaction({ occurredAt: new Date(now + 60_001) }), policy, now);
    expect(rejection?.code).toBe(RejectionCode.REJECTION_CODE_IN_FUTURE);
    expect(rejection?.field).toBe('occurred_at');
  });

  it('rejects records older than the acceptance horizon as too old', () => {
    const edge = now - policy.acceptanceHorizonMs;
    expect(validateTransaction(aTransaction({ occurredAt: new Date(edge) }), policy, now)).toBeUndefined();
    const rejection = validateTransaction(aTransaction({ occurredAt: new Date(edge - 1) }), policy, now);
    expect(rejection?.code).toBe(RejectionCode.REJECTION_CODE_TOO_OLD);
  });
});
