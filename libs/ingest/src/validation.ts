import { RejectionCode, VehicleClass, type TollTransaction } from '@tollstream/contracts';

/** Limits a station's records must respect. All configurable per deployment. */
export interface ValidationPolicy {
  /** Largest toll accepted, in minor units. */
  maxAmountMinor: number;
  /** How far ahead of the ingestor's clock occurred_at may be (station clocks drift). */
  maxClockSkewMs: number;
  /** How old a record may be. It also bounds the duplicate-detection memory: see docs/adr/0003. */
  acceptanceHorizonMs: number;
  /** ISO 4217 codes accepted. */
  currencies: ReadonlySet<string>;
}

export interface Rejection {
  code: RejectionCode;
  /** proto field name at fault, when there is one */
  field: string;
  reason: string;
}

/** Every ISO 4217 code the runtime knows (ICU data). */
export const isoCurrencies: ReadonlySet<string> = new Set(Intl.supportedValuesOf('currency'));

const idPattern = /^[A-Za-z0-9._:-]+$/;
const platePattern = /^[A-Z0-9 -]+$/;

const knownVehicleClasses = new Set<VehicleClass>([
  VehicleClass.VEHICLE_CLASS_CAR,
  VehicleClass.VEHICLE_CLASS_MOTORCYCLE,
  VehicleClass.VEHICLE_CLASS_BUS,
  VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE,
  VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE,
  VehicleClass.VEHICLE_CLASS_OTHER,
]);

/** Bounds on every string the platform stores: keeps memory, indexes and the warehouse sane. */
export const fieldLimits = {
  transaction_id: 128,
  station_id: 64,
  lane_id: 32,
  tag_id: 64,
  plate: 16,
  account_id: 64,
} as const;

const invalid = (field: string, reason: string): Rejection => ({
  code: RejectionCode.REJECTION_CODE_INVALID_FIELD,
  field,
  reason: `${field}: ${reason}`,
});

function checkIdentifier(field: keyof typeof fieldLimits, value: string, required: boolean): Rejection | undefined {
  if (value.length === 0) return required ? invalid(field, 'is required') : undefined;
  if (value.length > fieldLimits[field]) return invalid(field, `longer than ${fieldLimits[field]} characters`);
  if (!idPattern.test(value)) return invalid(field, 'may contain only letters, digits and . _ : -');
  return undefined;
}

/** The first thing wrong with a record, or undefined when it can be accepted at `nowMs`. */
export function validateTransaction(
  transaction: TollTransaction,
  policy: ValidationPolicy,
  nowMs: number,
): Rejection | undefined {
  const identifierProblem =
    checkIdentifier('transaction_id', transaction.transactionId, true) ??
    checkIdentifier('station_id', transaction.stationId, true) ??
    checkIdentifier('lane_id', transaction.laneId, true) ??
    checkIdentifier('tag_id', transaction.tagId, false) ??
    checkIdentifier('account_id', transaction.accountId, false);
  if (identifierProblem) return identifierProblem;

  if (transaction.plate.length > fieldLimits.plate) return invalid('plate', `longer than ${fieldLimits.plate} characters`);
  if (transaction.plate.length > 0 && !platePattern.test(transaction.plate)) {
    return invalid('plate', 'may contain only upper-case letters, digits, space and -');
  }
  if (transaction.tagId.length === 0 && transaction.plate.length === 0) {
    return invalid('tag_id', 'a tag_id or a plate is required to identify the vehicle');
  }
  if (!knownVehicleClasses.has(transaction.vehicleClass)) {
    return invalid('vehicle_class', `unknown vehicle class ${transaction.vehicleClass}`);
  }
  if (!Number.isSafeInteger(transaction.amountMinor) || transaction.amountMinor < 0) {
    return invalid('amount_minor', 'must be a non-negative integer number of minor units');
  }
  if (transaction.amountMinor > policy.maxAmountMinor) {
    return invalid('amount_minor', `exceeds the maximum of ${policy.maxAmountMinor}`);
  }
  if (!policy.currencies.has(transaction.currency)) {
    return invalid('currency', `"${transaction.currency.slice(0, 8)}" is not an accepted ISO 4217 code`);
  }
  const occurredAt = transaction.occurredAt;
  if (!occurredAt || Number.isNaN(occurredAt.getTime())) return invalid('occurred_at', 'is required');
  const occurredAtMs = occurredAt.getTime();
  if (occurredAtMs > nowMs + policy.maxClockSkewMs) {
    return {
      code: RejectionCode.REJECTION_CODE_IN_FUTURE,
      field: 'occurred_at',
      reason: `occurred_at: ${occurredAt.toISOString()} is more than ${policy.maxClockSkewMs} ms in the future`,
    };
  }
  if (occurredAtMs < nowMs - policy.acceptanceHorizonMs) {
    return {
      code: RejectionCode.REJECTION_CODE_TOO_OLD,
      field: 'occurred_at',
      reason: `occurred_at: ${occurredAt.toISOString()} is older than the acceptance horizon of ${policy.acceptanceHorizonMs} ms`,
    };
  }
  return undefined;
}

