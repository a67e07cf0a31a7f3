import { VehicleClass, type TollTransaction } from '@tollstream/contracts';
import { z } from 'zod';

/** Field names as they appear in an input file: the proto field names (snake_case). */
export const transactionFieldNames = [
  'transaction_id',
  'station_id',
  'lane_id',
  'tag_id',
  'plate',
  'account_id',
  'vehicle_class',
  'amount_minor',
  'currency',
  'occurred_at',
] as const;

export type TransactionFieldName = (typeof transactionFieldNames)[number];

/** Fields that may be left out (or empty): the station could not read them. */
export const optionalTransactionFields: ReadonlySet<TransactionFieldName> = new Set(['tag_id', 'plate', 'account_id']);

/** Short lowercase names accepted in files besides the enum names (`VEHICLE_CLASS_CAR`). */
export const vehicleClassShortNames: Readonly<Record<string, VehicleClass>> = {
  car: VehicleClass.VEHICLE_CLASS_CAR,
  motorcycle: VehicleClass.VEHICLE_CLASS_MOTORCYCLE,
  bus: VehicleClass.VEHICLE_CLASS_BUS,
  truck_2_axle: VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE,
  truck_3_plus_axle: VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE,
  other: VehicleClass.VEHICLE_CLASS_OTHER,
};

const vehicleClassEnumNames: Readonly<Record<string, VehicleClass>> = Object.fromEntries(
  Object.entries(vehicleClassShortNames).map(([short, value]) => [`VEHICLE_CLASS_${short.toUpperCase()}`, value]),
);

/** A value quoted for an error message, cut short so a garbage line cannot flood the report. */
export function quoteValue(value: unknown): string {
  let text: string;
  if (value === undefined) text = 'undefined';
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

const typeOf = (value: unknown): string => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value);

const requiredText = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : `must be a string, got ${typeOf(issue.input)}`) })
  .trim()
  .min(1, 'is required');

/** Absent, null and "" all mean "not read by the station". */
const optionalText = z
  .union([z.string(), z.null()], { error: (issue) => `must be a string, got ${typeOf(issue.input)}` })
  .optional()
  .transform((value) => (value ?? '').trim());

const vehicleClass = requiredText.transform((value, ctx) => {
  const parsed = vehicleClassShortNames[value.toLowerCase()] ?? vehicleClassEnumNames[value.toUpperCase()];
  if (parsed === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `${quoteValue(value)} is not a vehicle class (${Object.keys(vehicleClassShortNames).join(', ')} or VEHICLE_CLASS_*)`,
    });
    return z.NEVER;
  }
  return parsed;
});

const integerText = /^[+-]?\d+$/;

const amountMinor = z
  .union([z.number(), z.string()], {
    error: (issue) =>
      issue.input === undefined || issue.input === null ? 'is required' : `must be an integer, got ${typeOf(issue.input)}`,
  })
  .transform((value, ctx) => {
    const text = typeof value === 'string' ? value.trim() : undefined;
    if (text === '') {
      ctx.addIssue({ code: 'custom', message: 'is required' });
      return z.NEVER;
    }
    if (text !== undefined && !integerText.test(text)) {
      ctx.addIssue({ code: 'custom', message: `${quoteValue(value)} is not an integer` });
      return z.NEVER;
    }
    const amount = text === undefined ? (value as number) : Number(text);
    if (!Number.isInteger(amount)) {
      ctx.addIssue({ code: 'custom', message: `${quoteValue(value)} is not an integer` });
      return z.NEVER;
    }
    if (!Number.isSafeInteger(amount)) {
      ctx.addIssue({ code: 'custom', message: `${quoteValue(value)} is out of range` });
      return z.NEVER;
    }
    if (amount < 0) {
      ctx.addIssue({ code: 'custom', message: `${quoteValue(value)} is negative` });
      return z.NEVER;
    }
    return amount;
  });

const currency = requiredText.transform((value, ctx) => {
  if (!/^[A-Za-z]{3}$/.test(value)) {
    ctx.addIssue({ code: 'custom', message: `${quoteValue(value)} is not an ISO 4217 code (three letters, e.g. USD)` });
    return z.NEVER;
  }
  return value.toUpperCase();
});

// RFC 3339 / ISO 8601 extended format; the UTC offset (or Z) is mandatory.
const timestampPattern =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;

/**
 * Parses an ISO 8601 instant that carries its UTC offset (`Z`, `+02:00`, `-0500`).
 * Naive local times are refused: the station's clock zone is not knowable here.
 * Returns the Date, or the reason it is refused.
 */
export function parseInstant(text: string): Date | string {
  const match = timestampPattern.exec(text);
  if (!match) return `${quoteValue(text)} is not an ISO 8601 date-time (e.g. 2024-05-01T08:30:00Z)`;
  const [, year, month, day, hour, minute, second = '0', fraction = '', zulu, sign, offsetHours, offsetMinutes] = match;
  if (!zulu && !sign) {
    return `${quoteValue(text)} has no UTC offset (add Z or an offset such as +02:00, local times are ambiguous)`;
  }
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const daysInMonth = mo >= 1 && mo <= 12 ? new Date(Date.UTC(y, mo, 0)).getUTCDate() : 0;
  const offset = sign ? Number(offsetHours) * 60 + Number(offsetMinutes) : 0;
  if (d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59 || Number(offsetMinutes ?? 0) > 59 || offset > 18 * 60) {
    return `${quoteValue(text)} is not a valid date-time`;
  }
  const milliseconds = Number(fraction.padEnd(3, '0').slice(0, 3));
  const utcMs = Date.UTC(y, mo - 1, d, h, mi, s, milliseconds) - (sign === '-' ? -offset : offset) * 60_000;
  // Date.UTC maps years 0-99 to 1900-1999; nobody drove through a toll lane then either.
  if (y < 1970) return `${quoteValue(text)} is before 1970`;
  return new Date(utcMs);
}

const occurredAt = requiredText.transform((value, ctx) => {
  const parsed = parseInstant(value);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

const transactionRecordSchema = z.strictObject({
  transaction_id: requiredText,
  station_id: requiredText,
  lane_id: requiredText,
  tag_id: optionalText,
  plate: optionalText,
  account_id: optionalText,
  vehicle_class: vehicleClass,
  amount_minor: amountMinor,
  currency,
  occurred_at: occurredAt,
});

export type RecordParseResult = { ok: true; transaction: TollTransaction } | { ok: false; reason: string };

/**
 * Converts one record of an input file (field name → value, as read from JSON or CSV) into a
 * TollTransaction. Every problem of the record is reported, as `field: problem; field: problem`.
 * This checks shape and types only; the ingestor remains the authority on business rules.
 */
export function parseTransactionRecord(record: unknown): RecordParseResult {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    return { ok: false, reason: `expected an object with the transaction fields, got ${typeOf(record)}` };
  }
  const result = transactionRecordSchema.safeParse(record);
  if (!result.success) {
    const reasons = result.error.issues.map((issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => quoteValue(key)).join(', ')}`
        : `${issue.path.join('.')}: ${issue.message}`,
    );
    return { ok: false, reason: reasons.join('; ') };
  }
  const fields = result.data;
  return {
    ok: true,
    transaction: {
      transactionId: fields.transaction_id,
      stationId: fields.station_id,
      laneId: fields.lane_id,
      tagId: fields.tag_id,
      plate: fields.plate,
      accountId: fields.account_id,
      vehicleClass: fields.vehicle_class,
      amountMinor: fields.amount_minor,
      currency: fields.currency,
      occurredAt: fields.occurred_at,
    },
  };
}
