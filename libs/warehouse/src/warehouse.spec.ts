import { TransactionBatch, VehicleClass, Alert, TrafficCondition } from '@tollstream/contracts';
import fc from 'fast-check';
import {
  alertColumns,
  alertRow,
  assertMigrationsOrdered,
  formatResult,
  migrations,
  readOnlyStatement,
  statementsFor,
  StatementNotAllowedError,
  timestampText,
  transactionColumns,
  transactionRows,
  tsvFields,
  tsvText,
  vehicleClassName,
} from './index';

describe('migrations', () => {
  it('are numbered 1, 2, 3, ... in order, and every statement is idempotent', () => {
    expect(() => assertMigrationsOrdered()).not.toThrow();
    expect(() => assertMigrationsOrdered([{ version: 2, name: 'x', statements: [] }])).toThrow(/expected 1/);
    for (const migration of migrations) {
      for (const statement of statementsFor(migration, 'tolls')) {
        expect(statement).toMatch(/^\s*(CREATE TABLE IF NOT EXISTS|CREATE OR REPLACE VIEW|ALTER TABLE \S+ ADD COLUMN IF NOT EXISTS)/);
        expect(statement).not.toContain('{db}');
      }
    }
  });

  it('refuses database names that are not plain identifiers', () => {
    expect(() => statementsFor(migrations[0], 'tolls; DROP TABLE x')).toThrow(/invalid warehouse database name/);
    expect(statementsFor(migrations[0], 'tolls_test')[0]).toContain('`tolls_test`.transactions');
  });
});

describe('row mapping', () => {
  it('maps a transaction to a JSONCompactEachRow line in column order', () => {
    const batch: TransactionBatch = {
      batchId: 'b-1',
      transactions: [
        {
          transaction: {
            transactionId: 'tx-1', stationId: 'st-1', laneId: 'L2', tagId: 'TAG', plate: 'AB "1"', accountId: 'acct',
            vehicleClass: VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE, amountMinor: 1234, currency: 'EUR', occurredAt: new Date('2026-11-22T10:00:00.123Z'),
          },
          ingestedAt: new Date('2026-11-22T10:00:01.5Z'),
          partition: 3,
        },
      ],
    };
    const mapped = transactionRows(batch, 42);
    expect(mapped.invalid).toEqual([]);
    const row = tsvFields(mapped.lines[0]);
    expect(row).toHaveLength(transactionColumns.length);
    expect(Object.fromEntries(transactionColumns.map((column, index) => [column, row[index]]))).toEqual({
      station_id: 'st-1', transaction_id: 'tx-1', lane_id: 'L2', tag_id: 'TAG', plate: 'AB "1"', account_id: 'acct',
      vehicle_class: 'TRUCK_2_AXLE', amount_minor: '1234', currency: 'EUR', occurred_at: '1795341600.123', ingested_at: '1795341601.5',
      partition: '3', stream_sequence: '42', batch_id: 'b-1',
    });
    expect(mapped.newestIngestedAtMs).toBe(Date.parse('2026-11-22T10:00:01.5Z'));
  });

  it('escapes TabSeparated fields the way ClickHouse reads them back', () => {
    for (const text of ['plain', 'tab\there', 'new\nline', 'back\\slash', 'cr\rnul\0', '']) {
      expect(tsvText(text).includes('\t')).toBe(false);
      expect(tsvFields(`${tsvText(text)}\t${tsvText('x')}`)).toEqual([text, 'x']);
    }
  });

  it('gives no rows for a heartbeat and dead-letters records it cannot store, keeping the others', () => {
    expect(transactionRows({ batchId: 'heartbeat-1', transactions: [] }, 1).lines).toEqual([]);
    const mapped = transactionRows(
      {
        batchId: 'b',
        transactions: [
          { transaction: undefined, ingestedAt: new Date(), partition: 0 },
          { transaction: { transactionId: 'ok', stationId: 's', laneId: '', tagId: '', plate: '', accountId: '', vehicleClass: 1, amountMinor: 1, currency: 'USD', occurredAt: new Date() }, ingestedAt: new Date(), partition: 0 },
        ],
      },
      7,
    );
    expect(mapped.lines).toHaveLength(1);
    expect(mapped.invalid.map((record) => record.reasonCode)).toEqual(['INVALID_RECORD']);
    expect(mapped.invalid[0].reason).toMatch(/record without a transaction \(batch b, stream sequence 7\)/);
  });

  it('writes instants exactly (milliseconds) and old or missing ones as text', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1e12, max: 4e12 }), (ms) => {
        expect(Math.round(Number(timestampText(new Date(ms))) * 1000)).toBe(ms);
      }),
    );
    expect(timestampText(undefined)).toBe('1970-01-01 00:00:00.000');
    expect(timestampText(new Date('1999-01-02T03:04:05.006Z'))).toBe('1999-01-02 03:04:05.006');
  });

  it('names vehicle classes without the enum prefix, and unknown ones by number', () => {
    expect(vehicleClassName(VehicleClass.VEHICLE_CLASS_CAR)).toBe('CAR');
    expect(vehicleClassName(42 as VehicleClass)).toBe('CLASS_42');
  });

  it('maps a traffic alert and refuses an alert without a kind', () => {
    const alert: Alert = {
      alertId: 'a-1', raisedAt: new Date('2026-11-22T10:00:00Z'), spendingThresholdBreached: undefined,
      stationTraffic: { stationId: 'st', slotStart: new Date('2026-11-22T09:30:00Z'), slotEnd: new Date('2026-11-22T10:00:00Z'), timeZone: 'UTC', condition: TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM, vehicleCount: 3, expectedMinimum: 100, expectedMaximum: 0, referenceVersion: 'r1' },
    };
    const row = JSON.parse(alertRow(alert, 'tolls.alerts.traffic', 5).line ?? 'null') as unknown[];
    const byColumn = Object.fromEntries(alertColumns.map((column, index) => [column, row[index]]));
    expect(byColumn).toMatchObject({ alert_id: 'a-1', kind: 'traffic', station_id: 'st', traffic_condition: 'BELOW_MINIMUM', vehicle_count: 3, subject: 'tolls.alerts.traffic' });
    expect(alertRow({ ...alert, stationTraffic: undefined }, 's', 1)).toEqual({ problem: 'alert a-1 has no known kind' });
  });
});

describe('read-only statement guard', () => {
  it.each([
    'SELECT 1',
    'select count() from tolls.transactions_unique;',
    "WITH 'DROP TABLE x' AS s SELECT s",
    'SHOW TABLES FROM tolls',
    'DESCRIBE TABLE tolls.transactions',
    'EXPLAIN SELECT 1',
    "SELECT * FROM tolls.alerts WHERE alert_id = 'a;b' SETTINGS max_threads = 1",
    "SELECT name FROM system.tables WHERE database = 'tolls'",
  ])('accepts %s', (sql) => {
    expect(() => readOnlyStatement(sql)).not.toThrow();
  });

  it.each([
    ['INSERT INTO t VALUES (1)', /only SELECT/],
    ['DROP TABLE tolls.transactions', /only SELECT/],
    ['SELECT 1; DROP TABLE t', /one statement/],
    ["SELECT * FROM file('/etc/passwd')", /"file\(" is not allowed/],
    ["SELECT * FROM url('http://x')", /"url\(" is not allowed/],
    ["SELECT 1 INTO OUTFILE '/tmp/x'", /INTO OUTFILE/],
    ['SET readonly = 0', /only SELECT/],
    ['SELECT 1 FORMAT CSV', /leave out FORMAT/],
    ['', /empty/],
    ["SELECT 'unterminated", /unterminated/],
    ['/* comment */ DELETE FROM t WHERE 1', /only SELECT/],
  ])('refuses %s', (sql, reason) => {
    expect(() => readOnlyStatement(sql)).toThrow(StatementNotAllowedError);
    expect(() => readOnlyStatement(sql)).toThrow(reason);
  });
});

describe('result formatting', () => {
  const result = {
    columns: [{ name: 'station_id', type: 'String' }, { name: 'vehicles', type: 'UInt64' }],
    rows: [['st-1', '12'], ['st,2', '3']],
    truncated: false,
    elapsedMs: 1,
  };
  it('prints a table with numbers right-aligned and a row count', () => {
    expect(formatResult(result, 'table')).toBe(
      ['station_id │ vehicles', '───────────┼─────────', 'st-1       │       12', 'st,2       │        3', '2 rows'].join('\n') + '\n',
    );
  });
  it('prints CSV with quoting and JSON objects', () => {
    expect(formatResult(result, 'csv')).toBe('station_id,vehicles\nst-1,12\n"st,2",3\n');
    expect(JSON.parse(formatResult(result, 'json'))).toEqual([{ station_id: 'st-1', vehicles: '12' }, { station_id: 'st,2', vehicles: '3' }]);
  });
});
