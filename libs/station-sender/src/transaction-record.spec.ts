import { VehicleClass } from '@tollstream/contracts';
import { parseInstant, parseTransactionRecord } from './transaction-record';

const valid = {
  transaction_id: 'tx-1',
  station_id: 'st-001',
  lane_id: 'L01',
  tag_id: 'TAG1',
  plate: 'ABC 123',
  account_id: 'acct-1',
  vehicle_class: 'car',
  amount_minor: 275,
  currency: 'USD',
  occurred_at: '2024-05-01T08:30:00Z',
};

const reasonFor = (overrides: Record<string, unknown>): string => {
  const result = parseTransactionRecord({ ...valid, ...overrides });
  if (result.ok) throw new Error('expected a parse failure');
  return result.reason;
};

describe('parseTransactionRecord', () => {
  it('maps snake_case fields to a TollTransaction', () => {
    const result = parseTransactionRecord(valid);
    expect(result).toEqual({
      ok: true,
      transaction: {
        transactionId: 'tx-1',
        stationId: 'st-001',
        laneId: 'L01',
        tagId: 'TAG1',
        plate: 'ABC 123',
        accountId: 'acct-1',
        vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
        amountMinor: 275,
        currency: 'USD',
        occurredAt: new Date('2024-05-01T08:30:00Z'),
      },
    });
  });

  it.each([
    ['car', VehicleClass.VEHICLE_CLASS_CAR],
    ['motorcycle', VehicleClass.VEHICLE_CLASS_MOTORCYCLE],
    ['bus', VehicleClass.VEHICLE_CLASS_BUS],
    ['truck_2_axle', VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE],
    ['truck_3_plus_axle', VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE],
    ['other', VehicleClass.VEHICLE_CLASS_OTHER],
    ['VEHICLE_CLASS_BUS', VehicleClass.VEHICLE_CLASS_BUS],
    ['VEHICLE_CLASS_TRUCK_3_PLUS_AXLE', VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE],
  ])('accepts vehicle class %s', (name, expected) => {
    const result = parseTransactionRecord({ ...valid, vehicle_class: name });
    expect(result.ok && result.transaction.vehicleClass).toBe(expected);
  });

  it('treats absent, null and empty optional fields as not read', () => {
    const { tag_id: _tag, account_id: _account, ...rest } = valid;
    const result = parseTransactionRecord({ ...rest, plate: null });
    expect(result.ok && [result.transaction.tagId, result.transaction.plate, result.transaction.accountId]).toEqual([
      '',
      '',
      '',
    ]);
  });

  it('accepts amount_minor as an integer string (CSV) and trims text', () => {
    const result = parseTransactionRecord({ ...valid, amount_minor: ' 1100 ', station_id: ' st-002 ', currency: 'usd' });
    expect(result.ok && [result.transaction.amountMinor, result.transaction.stationId, result.transaction.currency]).toEqual([
      1100,
      'st-002',
      'USD',
    ]);
  });

  it.each([
    [{ amount_minor: '12.5' }, 'amount_minor: "12.5" is not an integer'],
    [{ amount_minor: 12.5 }, 'amount_minor: 12.5 is not an integer'],
    [{ amount_minor: '12,50' }, 'amount_minor: "12,50" is not an integer'],
    [{ amount_minor: '1e3' }, 'amount_minor: "1e3" is not an integer'],
    [{ amount_minor: '' }, 'amount_minor: is required'],
    [{ amount_minor: null }, 'amount_minor: is required'],
    [{ amount_minor: true }, 'amount_minor: must be an integer, got boolean'],
    [{ amount_minor: -5 }, 'amount_minor: -5 is negative'],
    [{ amount_minor: '9007199254740993' }, 'amount_minor: "9007199254740993" is out of range'],
    [{ transaction_id: '' }, 'transaction_id: is required'],
    [{ station_id: '   ' }, 'station_id: is required'],
    [{ lane_id: 7 }, 'lane_id: must be a string, got number'],
    [{ plate: ['A'] }, 'plate: must be a string, got array'],
    [{ vehicle_class: 'spaceship' }, 'vehicle_class: "spaceship" is not a vehicle class'],
    [{ vehicle_class: 1 }, 'vehicle_class: must be a string, got number'],
    [{ currency: 'US$' }, 'currency: "US$" is not an ISO 4217 code'],
    [{ occurred_at: '2024-05-01T08:30:00' }, 'occurred_at: "2024-05-01T08:30:00" has no UTC offset'],
    [{ occurred_at: '2024-05-01 08:30' }, 'occurred_at: "2024-05-01 08:30" has no UTC offset'],
    [{ occurred_at: 'yesterday' }, 'occurred_at: "yesterday" is not an ISO 8601 date-time'],
    [{ occurred_at: '2024-02-30T08:30:00Z' }, 'occurred_at: "2024-02-30T08:30:00Z" is not a valid date-time'],
    [{ occurred_at: 1714552200000 }, 'occurred_at: must be a string, got number'],
    [{ colour: 'red' }, 'unknown field "colour"'],
  ])('rejects %j', (overrides, expected) => {
    expect(reasonFor(overrides)).toContain(expected);
  });

  it('reports every problem of a record at once', () => {
    const { transaction_id: _id, ...rest } = valid;
    const result = parseTransactionRecord({ ...rest, amount_minor: '1.5', occurred_at: '2024-05-01T08:30:00' });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason.split('; ').map((part) => part.split(':')[0])).toEqual([
      'transaction_id',
      'amount_minor',
      'occurred_at',
    ]);
  });

  it.each([null, 42, 'text', [1, 2]])('rejects a record that is not an object: %j', (record) => {
    const result = parseTransactionRecord(record);
    expect(!result.ok && result.reason).toMatch(/^expected an object with the transaction fields, got /);
  });
});

describe('parseInstant', () => {
  it.each([
    ['2024-05-01T08:30:00Z', '2024-05-01T08:30:00.000Z'],
    ['2024-05-01T08:30:00.123456789Z', '2024-05-01T08:30:00.123Z'],
    ['2024-05-01T10:30:00+02:00', '2024-05-01T08:30:00.000Z'],
    ['2024-05-01T03:30:00-0500', '2024-05-01T08:30:00.000Z'],
    ['2024-05-01t08:30z', '2024-05-01T08:30:00.000Z'],
    ['2024-05-01 08:30:00,5+00:00', '2024-05-01T08:30:00.500Z'],
    ['2024-02-29T23:59:59Z', '2024-02-29T23:59:59.000Z'],
  ])('reads %s as %s', (text, iso) => {
    const parsed = parseInstant(text);
    expect(parsed instanceof Date && parsed.toISOString()).toBe(iso);
  });

  it.each(['2024-05-01T08:30:00', '2024-05-01T08:30', '2024-05-01 08:30:00.250'])('refuses the naive time %s', (text) => {
    expect(parseInstant(text)).toMatch(/has no UTC offset/);
  });

  it.each(['2024-05-01', '2024-13-01T00:00:00Z', '2023-02-29T00:00:00Z', '2024-05-01T24:00:00Z', '2024-05-01T08:30:00+25:00'])(
    'refuses %s',
    (text) => {
      expect(typeof parseInstant(text)).toBe('string');
    },
  );
});
