import { CustomerSpendBatch, CustomerSpendWindow, DeadLetter, TollTransaction, VehicleClass } from '@tollstream/contracts';
import { parseTransactionRecord } from '@tollstream/station-sender';
import { aTollTransaction } from '@tollstream/testing';
import { DeadLetterFilterError, filterIsEmpty, matchesFilter, parseDeadLetterFilter, subjectOfFilter } from './filter';
import type { RedriveMark } from './ledger';
import type { StoredDeadLetter } from './reader';
import { planRedrive } from './redrive';
import { decodeOriginal, stationRecordOf } from './view';

// Pure logic: no broker.
const now = Date.parse('2026-12-07T10:00:00Z');

describe('dead letter filters', () => {
  it('parses sources, reason codes (any case), stations, instants and ages, ids', () => {
    const filter = parseDeadLetterFilter(
      { source: 'ingestor, notifier', reason: 'invalid_field,TOO_OLD', station: 'st-1,st-1,st-2', since: '2h', until: '2026-12-07T09:30:00+00:00', ids: ['12', '3', '12'] },
      now,
    );
    expect(filter).toEqual({
      sources: ['ingestor', 'notifier'],
      reasonCodes: ['INVALID_FIELD', 'TOO_OLD'],
      stationIds: ['st-1', 'st-2'],
      since: new Date('2026-12-07T08:00:00Z'),
      until: new Date('2026-12-07T09:30:00Z'),
      ids: [3, 12],
    });
    expect(filterIsEmpty(parseDeadLetterFilter({}, now))).toBe(true);
    expect(filterIsEmpty(filter)).toBe(false);
  });

  it.each([
    [{ source: 'ingester' }, /--source: unknown source "ingester" \(sources: ingestor, windower/],
    [{ reason: 'INVALID' }, /--reason: unknown reason code "INVALID" \(codes: INVALID_FIELD/],
    [{ station: 'st 1' }, /--station: "st 1" is not a station id/],
    [{ since: 'yesterday' }, /--since: expected an ISO 8601 instant with offset .* or an age/],
    [{ until: '2026-12-07T09:00:00' }, /--until: expected an ISO 8601 instant with offset/],
    [{ since: '1h', until: '2h' }, /--since .* must be before --until/],
    [{ ids: ['abc'] }, /"abc" is not a dead letter id/],
    [{ ids: ['0'] }, /"0" is not a dead letter id/],
    [{ source: ' , ' }, /--source: expected a comma-separated list/],
  ])('refuses %j with a message saying what is wrong', (raw, message) => {
    expect(() => parseDeadLetterFilter(raw, now)).toThrow(DeadLetterFilterError);
    expect(() => parseDeadLetterFilter(raw, now)).toThrow(message);
  });

  it('matches every given part, and reads one subject when one source is asked for', () => {
    const letter = { id: 7, source: 'ingestor', reasonCode: 'TOO_OLD', stationId: 'st-1', deadLetteredAt: new Date('2026-12-07T09:00:00Z') };
    expect(matchesFilter(letter, parseDeadLetterFilter({ source: 'ingestor', reason: 'too_old', station: 'st-1', since: '2h', until: '30m' }, now))).toBe(true);
    expect(matchesFilter(letter, parseDeadLetterFilter({ reason: 'IN_FUTURE' }, now))).toBe(false);
    expect(matchesFilter(letter, parseDeadLetterFilter({ station: 'st-2' }, now))).toBe(false);
    expect(matchesFilter(letter, parseDeadLetterFilter({ since: '30m' }, now))).toBe(false);
    expect(matchesFilter(letter, parseDeadLetterFilter({ until: '2026-12-07T09:00:00Z' }, now))).toBe(false);
    expect(matchesFilter(letter, parseDeadLetterFilter({ ids: ['8'] }, now))).toBe(false);
    expect(subjectOfFilter(parseDeadLetterFilter({ source: 'notifier' }, now))).toBe('tolls.dlq.notifier');
    expect(subjectOfFilter(parseDeadLetterFilter({ source: 'notifier,windower' }, now))).toBe('tolls.dlq.>');
  });
});

const stored = (letter: Partial<DeadLetter>, id = 1): StoredDeadLetter => ({
  id,
  subject: `tolls.dlq.${letter.source ?? 'ingestor'}`,
  letter: DeadLetter.fromPartial({ source: 'ingestor', reasonCode: 'INVALID_FIELD', ...letter }),
});

describe('planning a re-drive', () => {
  const transaction = aTollTransaction({ currency: 'ZZZ' });
  const original = Buffer.from(TollTransaction.encode(transaction).finish());

  it('sends ingestor records through the station API, decoded', () => {
    expect(planRedrive(stored({ original }), undefined)).toEqual({ action: 'station-api', transaction });
  });

  it('republishes a whole message to its subject under an id derived from its original id', () => {
    const plan = planRedrive(stored({ source: 'traffic-anomaly', original: Buffer.from([1]), originalSubject: 'tolls.agg.traffic.2', originalMsgId: 'm-1' }), undefined);
    expect(plan).toEqual({ action: 'republish', subject: 'tolls.agg.traffic.2', msgId: 'redrive/m-1', data: new Uint8Array([1]) });
  });

  it('leaves alone what was re-driven with a settled outcome, and retries what failed', () => {
    const mark = (outcome: RedriveMark['outcome']): RedriveMark => ({ outcome, route: 'station-api', detail: '', by: 'op', at: '2026-12-07T10:00:00Z', runId: 'r' });
    for (const outcome of ['accepted', 'duplicate', 'rejected-again', 'republished'] as const) {
      expect(planRedrive(stored({ original }), mark(outcome)).action).toBe('already-redriven');
    }
    expect(planRedrive(stored({ original }), mark('failed')).action).toBe('station-api');
  });

  it.each([
    [{ source: 'warehouse-loader', originalSubject: 'tolls.tx.0', originalMsgId: 'b-1' }, /immutable/],
    [{ source: 'billing-threshold', originalSubject: 'tolls.agg.spend.0' }, /one record of a stream message/],
    [{ source: 'notifier', originalSubject: '' }, /does not say which subject/],
    [{ source: 'ingestor', original: Buffer.from([0xff, 0xff, 0xff]) }, /not a TollTransaction/],
  ] as Array<[Partial<DeadLetter>, RegExp]>)('says why %j cannot be re-driven', (letter, why) => {
    const plan = planRedrive(stored(letter), undefined);
    expect(plan.action).toBe('not-redrivable');
    expect(plan.action === 'not-redrivable' && plan.why).toMatch(why);
  });
});

describe('what operators see of an original', () => {
  it('decodes by where it came from, a whole batch or one record of it, and shows bytes that fit nothing', () => {
    const window = CustomerSpendWindow.fromPartial({ accountId: 'acct-1', windowStart: new Date('2026-12-07T09:00:00Z'), revision: 2 });
    const batch = CustomerSpendBatch.encode(CustomerSpendBatch.fromPartial({ windows: [window], batchId: 'b-1' })).finish();
    expect(decodeOriginal('billing-threshold', 'tolls.agg.spend.1', batch)).toMatchObject({ type: 'tolls.stream.v1.CustomerSpendBatch', value: { batchId: 'b-1' } });
    expect(decodeOriginal('billing-threshold', 'tolls.agg.spend.1', CustomerSpendWindow.encode(window).finish())).toMatchObject({
      type: 'tolls.stream.v1.CustomerSpendWindow',
      value: { accountId: 'acct-1', revision: 2 },
    });
    expect(decodeOriginal('ingestor', '', TollTransaction.encode(aTollTransaction()).finish())).toMatchObject({ type: 'tolls.ingest.v1.TollTransaction', value: { transactionId: 'tx-1' } });
    expect(decodeOriginal('notifier', 'tolls.alerts.spending', new Uint8Array([0xff, 0xff]))).toEqual({ base64: '//8=', bytes: 2 });
  });

  it('exports a station record that tollstream send reads back as the same transaction', () => {
    for (const transaction of [aTollTransaction({ currency: 'ZZZ' }), aTollTransaction({ tagId: '', accountId: '', vehicleClass: VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE })]) {
      const record = stationRecordOf(transaction);
      expect(parseTransactionRecord(JSON.parse(JSON.stringify(record)))).toEqual({ ok: true, transaction });
    }
    expect(stationRecordOf(aTollTransaction({ vehicleClass: VehicleClass.VEHICLE_CLASS_UNSPECIFIED })).vehicle_class).toBe('VEHICLE_CLASS_UNSPECIFIED');
  });
});
