import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { VehicleClass, type TollTransaction } from '@tollstream/contracts';
import { parseFaults, FaultSyntaxError, parseDuration } from './faults';
import { TrafficGenerator, type StationBatch } from './generator';
import { localWeekdayMinute } from './local-time';
import { buildTrafficModel, expectedVehicles, localProfile, stationRatePerSecond } from './model';
import { bandFor, referenceBandRows, referenceBandsCsv, stationCredentialsJson, stationTimeZonesJson } from './scenario';

const model = buildTrafficModel({ seed: 'demo', stations: 8, accounts: 200, timeZones: ['America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Asia/Kathmandu'] });
// Wednesday 2026-11-18 12:00 UTC (07:00 in New York).
const wednesdayNoonUtc = Date.UTC(2026, 10, 18, 12, 0, 0);
const all = (batches: StationBatch[]) => batches.flatMap((batch) => batch.transactions);
const at = (transaction: TollTransaction) => (transaction.occurredAt as Date).getTime();
const station = (index: number) => model.stations[index] as (typeof model.stations)[number];

describe('traffic model', () => {
  it('is the same for the same seed and differs for another seed', () => {
    const again = buildTrafficModel({ seed: 'demo', stations: 8, accounts: 200, timeZones: ['America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Asia/Kathmandu'] });
    expect(again.stations).toEqual(model.stations);
    expect(again.accounts).toEqual(model.accounts);
    expect(buildTrafficModel({ seed: 'other', stations: 8, accounts: 200 }).accounts).not.toEqual(model.accounts);
  });

  it('names stations st-001… with their zone, lanes and a toll schedule in integer cents × tariff', () => {
    expect(model.stations.map((s) => s.id)).toEqual(['st-001', 'st-002', 'st-003', 'st-004', 'st-005', 'st-006', 'st-007', 'st-008']);
    expect(model.stations[3]?.timeZone).toBe('Asia/Kathmandu');
    for (const station of model.stations) {
      expect(station.lanes).toBeGreaterThanOrEqual(2);
      expect(station.tollCents.car).toBe(Math.round(275 * station.tariffFactor));
      expect(station.tollCents.truck_3_plus_axle).toBe(Math.round(1100 * station.tariffFactor));
      expect(Object.values(station.tollCents).every(Number.isInteger)).toBe(true);
    }
  });

  it('has heavy users with low monthly thresholds', () => {
    const heavy = model.accounts.filter((a) => a.heavyUser);
    expect(heavy.length).toBe(10);
    expect(Math.max(...heavy.map((a) => a.monthlyThresholdMinor))).toBeLessThan(Math.min(...model.accounts.filter((a) => !a.heavyUser).map((a) => a.monthlyThresholdMinor)));
  });

  it('shapes traffic by local time: rush hours above nights, weekends different from weekdays', () => {
    expect(localProfile(2, 8 * 60)).toBeGreaterThan(5 * localProfile(2, 3 * 60));
    expect(localProfile(2, 17 * 60)).toBeGreaterThan(localProfile(2, 12 * 60));
    expect(localProfile(5, 8 * 60)).toBeLessThan(localProfile(2, 8 * 60) / 2);
    const rate = { recordsPerSecond: 100, pattern: 'realistic' as const };
    // 07:00 local in New York vs 04:00 local in Los Angeles at the same instant.
    expect(localWeekdayMinute('America/New_York', wednesdayNoonUtc)).toEqual({ weekday: 2, minute: 7 * 60 });
    expect(stationRatePerSecond(model, 0, wednesdayNoonUtc, rate) / station(0).baseVolume).toBeGreaterThan(
      (3 * stationRatePerSecond(model, 2, wednesdayNoonUtc, rate)) / station(2).baseVolume,
    );
    expect(localWeekdayMinute('Asia/Kathmandu', wednesdayNoonUtc)).toEqual({ weekday: 2, minute: 17 * 60 + 45 });
  });

  it('expects vehicles per slot matching what is generated', () => {
    const rate = { recordsPerSecond: 50, pattern: 'realistic' as const };
    const generator = new TrafficGenerator(model, rate);
    const counts = all(generator.generate(wednesdayNoonUtc, wednesdayNoonUtc + 30 * 60_000)).filter((t) => t.stationId === 'st-001').length;
    const expected = expectedVehicles(model, rate, 'st-001', wednesdayNoonUtc, 30);
    expect(Math.abs(counts - expected)).toBeLessThan(4 * Math.sqrt(expected) + 2);
  });
});

describe('generator', () => {
  const rate = { recordsPerSecond: 200, pattern: 'realistic' as const };

  it('is deterministic for seed, interval and rate, whatever the cut of the interval', () => {
    const whole = all(new TrafficGenerator(model, rate).generate(wednesdayNoonUtc, wednesdayNoonUtc + 60_000));
    const cut = new TrafficGenerator(model, rate);
    const parts = [...all(cut.generate(wednesdayNoonUtc, wednesdayNoonUtc + 20_000)), ...all(cut.generate(wednesdayNoonUtc + 20_000, wednesdayNoonUtc + 60_000))];
    const byId = (a: TollTransaction, b: TollTransaction) => a.transactionId.localeCompare(b.transactionId);
    expect([...parts].sort(byId)).toEqual([...whole].sort(byId));
    expect(new Set(whole.map((t) => t.transactionId)).size).toBe(whole.length);
    expect(whole.length).toBeGreaterThan(0);
  });

  it('produces records with event times in the interval, plate-only vehicles and tolls from the schedule', () => {
    const records = all(new TrafficGenerator(model, rate).generate(wednesdayNoonUtc, wednesdayNoonUtc + 60_000));
    for (const record of records) {
      const t = at(record);
      expect(t).toBeGreaterThanOrEqual(wednesdayNoonUtc);
      expect(t).toBeLessThan(wednesdayNoonUtc + 60_000);
      expect(record.currency).toBe('USD');
    }
    expect(records.some((r) => r.accountId === '' && r.tagId === '' && r.plate !== '')).toBe(true);
    const car = records.find((r) => r.vehicleClass === VehicleClass.VEHICLE_CLASS_CAR);
    expect(car?.amountMinor).toBe(model.stations.find((station) => station.id === car?.stationId)?.tollCents.car);
  });

  it('keeps to the rate: flat is constant, realistic averages to the rate over a week', () => {
    const flat = new TrafficGenerator(model, { recordsPerSecond: 1000, pattern: 'flat' });
    expect(Math.abs(all(flat.generate(wednesdayNoonUtc, wednesdayNoonUtc + 10_000)).length - 10_000)).toBeLessThan(100);
    const week = 7 * 86_400_000;
    let expected = 0;
    for (const station of model.stations) for (let t = wednesdayNoonUtc; t < wednesdayNoonUtc + week; t += 3_600_000) expected += expectedVehicles(model, { recordsPerSecond: 1, pattern: 'realistic' }, station.id, t, 60);
    expect(expected / (week / 1000)).toBeCloseTo(1, 1);
  });

  it('batches per station, at most batchSize records each', () => {
    const batches = new TrafficGenerator(model, { ...rate, batchSize: 50 }).generate(wednesdayNoonUtc, wednesdayNoonUtc + 60_000);
    for (const batch of batches) {
      expect(batch.transactions.length).toBeLessThanOrEqual(50);
      expect(batch.transactions.every((t) => t.stationId === batch.stationId)).toBe(true);
    }
  });

  it('stops at maxRecords', () => {
    const generator = new TrafficGenerator(model, { ...rate, maxRecords: 1234 });
    expect(all(generator.generate(wednesdayNoonUtc, wednesdayNoonUtc + 3_600_000)).length).toBe(1234);
    expect(generator.exhausted).toBe(true);
    expect(generator.report().validRecords).toBe(1234);
  });

  it('generates at least 300,000 records a second of CPU time (measured outside the jest sandbox)', () => {
    const output = execFileSync(process.execPath, ['--import', 'tsx', join(__dirname, '..', '..', 'bench', 'generation-speed.ts'), '100000', '100'], { encoding: 'utf8', timeout: 120_000 });
    const result = JSON.parse(output.trim().split('\n').pop() as string) as { records: number; recordsPerCpuSecond: number; bestRecordsPerCpuSecond: number };
    process.stdout.write(`simulator generation: ${JSON.stringify(result)}\n`);
    expect(result.records).toBeGreaterThan(1_900_000);
    expect(result.bestRecordsPerCpuSecond).toBeGreaterThan(300_000);
  });
});

describe('faults', () => {
  const rate = { recordsPerSecond: 200, pattern: 'flat' as const };
  const start = wednesdayNoonUtc;

  it('parses the fault list and refuses bad input with a clear message', () => {
    const faults = parseFaults('duplicates=0.01,out-of-order=2s,late=5m:0.001,malformed=0.001,silent=st-007,drop=st-003:0.2@1h,burst=60s:5x@10s', start, new Set(model.stations.map((s) => s.id)));
    expect(faults).toEqual({
      duplicates: 0.01,
      outOfOrderMs: 2000,
      late: { delayMs: 300_000, fraction: 0.001 },
      malformed: 0.001,
      silent: [{ stationId: 'st-007', fromMs: start }],
      drop: [{ stationId: 'st-003', factor: 0.2, fromMs: start + 3_600_000 }],
      burst: [{ fromMs: start + 10_000, toMs: start + 70_000, factor: 5 }],
    });
    expect(() => parseFaults('duplicates=2', start)).toThrow('fault "duplicates=2": duplicates: "2" is not a fraction between 0 and 1');
    expect(() => parseFaults('late=5m', start)).toThrow(FaultSyntaxError);
    expect(() => parseFaults('silent=st-999', start, new Set(['st-001']))).toThrow('unknown station "st-999"');
    expect(() => parseFaults('explode=1', start)).toThrow('unknown fault');
    expect(() => parseDuration('5 minutes')).toThrow('not a duration');
  });

  it('duplicates: resends a fraction of batches, valid records only', () => {
    const generator = new TrafficGenerator(model, { ...rate, batchSize: 20, faults: { duplicates: 0.25, malformed: 0.05 } });
    const batches = generator.generate(start, start + 60_000);
    const resent = batches.filter((b) => b.resend.length > 0);
    expect(resent.length / batches.length).toBeGreaterThan(0.15);
    expect(resent.length / batches.length).toBeLessThan(0.35);
    for (const batch of resent) expect(batch.resend.every((t) => batch.transactions.includes(t) && !batch.expectedRejections.has(t.transactionId))).toBe(true);
    expect(generator.report().duplicateRecords).toBe(resent.reduce((sum, b) => sum + b.resend.length, 0));
  });

  it('out-of-order: shuffles within the bound and counts the records sent after a later one', () => {
    const generator = new TrafficGenerator(model, { ...rate, faults: { outOfOrderMs: 2000 } });
    const batches = generator.generate(start, start + 60_000);
    let moved = 0;
    for (const id of model.stations.map((s) => s.id)) {
      const times = batches.filter((b) => b.stationId === id).flatMap((b) => b.transactions.map((t) => at(t)));
      let latest = -Infinity;
      for (const t of times) {
        expect(latest - t).toBeLessThanOrEqual(2000);
        if (t < latest) moved++;
        latest = Math.max(latest, t);
      }
    }
    expect(moved).toBeGreaterThan(100);
    expect(generator.report().outOfOrderRecords).toBe(moved);
  });

  it('late: holds records back for the delay, then sends them; flush releases the rest', () => {
    const generator = new TrafficGenerator(model, { ...rate, faults: { late: { delayMs: 120_000, fraction: 0.05 } } });
    const first = all(generator.generate(start, start + 60_000));
    expect(generator.report().lateHeld).toBeGreaterThan(300);
    const second = all(generator.generate(start + 60_000, start + 200_000));
    const late = second.filter((t) => at(t) < start + 60_000);
    expect(late.length).toBeGreaterThan(0);
    expect(late.every((t) => !first.includes(t))).toBe(true);
    const rest = all(generator.flush());
    const report = generator.report();
    expect(report.lateHeld).toBe(0);
    expect(report.lateRecords).toBeGreaterThanOrEqual(late.length + rest.length);
    expect(report.validRecords).toBe(first.length + second.length + rest.length);
    // Late records are delayed, not lost: the same records as without the fault.
    const ids = (records: TollTransaction[]) => records.map((t) => t.transactionId).sort();
    expect(ids([...first, ...second, ...rest])).toEqual(ids(all(new TrafficGenerator(model, rate).generate(start, start + 200_000))));
  });

  it('malformed: each labelled with the field the ingestor names (checked against its validation in apps/simulator)', () => {
    const generator = new TrafficGenerator(model, { ...rate, faults: { malformed: 0.05 } });
    const batches = generator.generate(start, start + 60_000);
    const labelled = batches.reduce((sum, batch) => sum + batch.expectedRejections.size, 0);
    const report = generator.report();
    expect(labelled).toBe(report.malformedRecords);
    expect(report.malformedRecords).toBeGreaterThan(300);
    expect(Object.keys(report.malformedByField).sort()).toEqual(['amount_minor', 'currency', 'plate', 'station_id', 'tag_id']);
    expect(report.validRecords + report.malformedRecords).toBe(all(batches).length);
  });

  it('silent station, traffic drop and burst change the counts of the stations concerned', () => {
    const faults = parseFaults('silent=st-002@30s,drop=st-003:0.2,burst=20s:5x@60s', start);
    const generator = new TrafficGenerator(model, { ...rate, faults });
    const normal = new TrafficGenerator(model, rate);
    const count = (batches: StationBatch[], id: string, from: number, to: number) =>
      all(batches).filter((t) => t.stationId === id && at(t) >= from && at(t) < to).length;
    const faulty = generator.generate(start, start + 120_000);
    const reference = normal.generate(start, start + 120_000);
    expect(count(faulty, 'st-002', start, start + 30_000)).toBe(count(reference, 'st-002', start, start + 30_000));
    expect(count(faulty, 'st-002', start + 30_000, start + 120_000)).toBe(0);
    expect(generator.report().silencedRecords).toBe(count(reference, 'st-002', start + 30_000, start + 120_000));
    const dropRatio = count(faulty, 'st-003', start, start + 60_000) / count(reference, 'st-003', start, start + 60_000);
    expect(dropRatio).toBeGreaterThan(0.15);
    expect(dropRatio).toBeLessThan(0.25);
    const burstRatio = count(faulty, 'st-001', start + 60_000, start + 80_000) / count(reference, 'st-001', start + 60_000, start + 80_000);
    expect(burstRatio).toBeGreaterThan(4.5);
    expect(burstRatio).toBeLessThan(5.5);
  });
});

describe('scenario files', () => {
  const rate = { recordsPerSecond: 20, pattern: 'realistic' as const };

  it('bands contain normal traffic of each slot and exclude a silent station or a 20 % drop when the slot is busy', () => {
    // A busy weekday morning and a quiet night in New York, generated and counted.
    for (const [slotStart, busy] of [
      [Date.UTC(2026, 10, 18, 12, 30), true],
      [Date.UTC(2026, 10, 18, 8, 0), false],
    ] as const) {
      const generator = new TrafficGenerator(model, rate);
      const count = all(generator.generate(slotStart, slotStart + 30 * 60_000)).filter((t) => t.stationId === 'st-001').length;
      const band = bandFor(expectedVehicles(model, rate, 'st-001', slotStart, 30));
      expect(count).toBeGreaterThanOrEqual(band.min);
      expect(count).toBeLessThanOrEqual(band.max);
      if (busy) {
        expect(0).toBeLessThan(band.min);
        expect(Math.round(count * 0.2)).toBeLessThan(band.min);
      }
    }
  });

  it('bands contain the normal traffic of every station and 30-minute slot of a weekday morning', () => {
    const from = Date.UTC(2026, 10, 18, 9, 0);
    const slots = 12;
    const counts = new Map<string, number>();
    for (const record of all(new TrafficGenerator(model, rate).generate(from, from + slots * 30 * 60_000))) {
      const key = `${record.stationId}/${Math.floor((at(record) - from) / 1_800_000)}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const outside: string[] = [];
    for (const { id } of model.stations) {
      for (let slot = 0; slot < slots; slot++) {
        const count = counts.get(`${id}/${slot}`) ?? 0;
        const band = bandFor(expectedVehicles(model, rate, id, from + slot * 1_800_000, 30));
        if (count < band.min || count > band.max) outside.push(`${id}/${slot}: ${count} not in [${band.min}, ${band.max}]`);
      }
    }
    expect(outside).toEqual([]);
  });

  it('writes reference rows for every station and slot of the week, in the traffic load format', () => {
    const rows = referenceBandRows(model, { ...rate, effectiveFrom: '2026-11-01T00:00:00Z' });
    expect(rows).toHaveLength(8 * 7 * 48);
    expect(rows[0]).toMatchObject({ stationId: 'st-001', timeZone: 'America/New_York', slotMinutes: 30, weekday: 'mon', slotStart: '00:00' });
    const csv = referenceBandsCsv(rows);
    expect(csv.split('\n')[0]).toBe('station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max');
    expect(rows.every((row) => row.min <= row.max)).toBe(true);
  });

  it('writes the ingestor credentials and the windower time zones', () => {
    expect(JSON.parse(stationCredentialsJson(model, 'token-0123456789abcdef'))).toEqual({ stations: [{ name: 'simulator', token: 'token-0123456789abcdef', stationIds: model.stations.map((s) => s.id) }] });
    expect(JSON.parse(stationTimeZonesJson(model)).stations['st-004']).toBe('Asia/Kathmandu');
  });
});
