import { bandOf, localWeekdayMinute, parseReferenceFile, ReferenceFileInvalid, versionAt } from './reference';

const header = 'station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max';

describe('parseReferenceFile', () => {
  it('parses CSV rows into one version per station and effective-from', () => {
    const versions = parseReferenceFile(
      [header, 'st-001,2026-11-01T00:00:00Z,Asia/Kathmandu,30,mon,07:30,10,80', 'st-001,2026-11-01T00:00:00Z,Asia/Kathmandu,30,mon,08:00,12,', 'st-002,2026-11-01T00:00:00Z,UTC,,sun,23:30,0,5'].join('\n'),
      'csv',
    );
    expect(versions).toHaveLength(2);
    expect(versions[0].bands).toEqual({ '1/15': { min: 10, max: 80 }, '1/16': { min: 12 } });
    expect(versions[1].bands).toEqual({ '7/47': { min: 0, max: 5 } });
    expect(versions[0].version).toMatch(/^2026-11-01T00:00:00.000Z#[0-9a-f]{10}$/);
  });

  it('names every bad line and field and returns nothing', () => {
    const text = [header, 'st-001,2026-11-01T00:00:00Z,UTC,30,mon,07:30,10,80', 'st-001,yesterday,Mars/Base,30,funday,07:45,-1,x', 'st-001,2026-11-01T00:00:00Z,UTC,30,mon,07:30,10,80', 'st-003,2026-11-01T00:00:00Z,UTC,30,tue,07:00,50,20'].join('\n');
    let caught: unknown;
    try {
      parseReferenceFile(text, 'csv');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ReferenceFileInvalid);
    const errors = (caught as ReferenceFileInvalid).errors.map((error) => `${error.line}:${error.field}`);
    expect(errors).toEqual(['3:effective_from', '3:time_zone', '3:weekday', '3:slot_start', '3:min', '3:max', '4:slot_start', '5:max']);
    expect((caught as Error).message).toContain('line 3: time_zone');
  });

  it('rejects a header without required columns', () => {
    expect(() => parseReferenceFile('station_id,min\nst-1,3', 'csv')).toThrow(/line 1: effective_from: missing column/);
  });

  it('parses JSON and names the path of bad entries', () => {
    const good = { references: [{ station_id: 'st-9', effective_from: '2026-11-01T00:00:00+05:45', time_zone: 'Asia/Kathmandu', slots: [{ weekday: 'fri', start: '00:00', min: 3, max: 9 }] }] };
    expect(parseReferenceFile(JSON.stringify(good), 'json')[0].bands).toEqual({ '5/0': { min: 3, max: 9 } });
    const bad = { references: [{ ...good.references[0], slots: [{ weekday: 'fri', start: '00:00', min: 'many' }] }] };
    expect(() => parseReferenceFile(JSON.stringify(bad), 'json')).toThrow(/references\[0\]\.slots\[0\]: min/);
    expect(() => parseReferenceFile('{', 'json')).toThrow(/not JSON/);
  });
});

describe('slots in the station zone', () => {
  it('finds local weekday and minute, the band and the effective version', () => {
    // 2026-11-23 is a Monday; 02:00Z = 07:45 in Kathmandu (+05:45).
    const t = Date.parse('2026-11-23T02:00:00Z');
    expect(localWeekdayMinute(t, 'Asia/Kathmandu')).toEqual({ weekday: 1, minute: 7 * 60 + 45 });
    const [version] = parseReferenceFile([header, 'st-1,2026-11-01T00:00:00Z,Asia/Kathmandu,15,mon,07:45,4,'].join('\n'), 'csv');
    expect(bandOf(version, t)).toEqual({ min: 4 });
    expect(versionAt({ stationId: 'st-1', versions: [version] }, Date.parse('2026-10-31T00:00:00Z'))).toBeUndefined();
    expect(versionAt({ stationId: 'st-1', versions: [version] }, t)).toBe(version);
  });
});
