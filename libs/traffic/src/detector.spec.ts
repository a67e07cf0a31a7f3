import type { StationReferenceRecord } from '@tollstream/stores';
import { applyTrafficBatch, newPartitionState, type DetectorOptions, type ReferenceView } from './detector';
import { parseReferenceFile } from './reference';

const slotMs = 30 * 60_000;
const options: DetectorOptions = { slotSizeMs: slotMs, graceMs: 0, allowedLatenessMs: 3_600_000, maxCatchUpMs: 86_400_000 };
// Monday 2026-11-23 08:00Z .. : every Monday slot has band [10, 20] for st-a and st-b (UTC).
const t0 = Date.parse('2026-11-23T08:00:00Z');
const rows = ['station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max'];
for (const station of ['st-a', 'st-b']) for (let slot = 0; slot < 48; slot++) rows.push(`${station},2026-11-01T00:00:00Z,UTC,30,mon,${String(Math.floor(slot / 2)).padStart(2, '0')}:${slot % 2 ? '30' : '00'},10,20`);
const records = new Map<string, StationReferenceRecord>(parseReferenceFile(rows.join('\n'), 'csv').map(({ stationId, ...version }) => [stationId, { stationId, versions: [version] }]));
const references: ReferenceView = { stationsOfPartition: () => ['st-a', 'st-b'], get: (id) => records.get(id) };
const window = (stationId: string, slot: number, count: number, revision = 1) => ({ stationId, startMs: t0 + slot * slotMs, endMs: t0 + (slot + 1) * slotMs, timeZone: 'UTC', count, revision });

describe('applyTrafficBatch', () => {
  it('alerts below and above the band, and for a silent station, once the watermark passes the slot end', () => {
    const state = newPartitionState(0);
    expect(applyTrafficBatch(state, { watermarkMs: t0, windows: [] }, references, options).alerts).toEqual([]);
    const open = applyTrafficBatch(state, { watermarkMs: t0 + slotMs - 1, windows: [] }, references, options);
    expect(open.alerts).toEqual([]);
    const closed = applyTrafficBatch(state, { watermarkMs: t0 + slotMs, windows: [window('st-a', 0, 25)] }, references, options);
    expect(closed.evaluations).toBe(2);
    expect(closed.alerts.map((alert) => [alert.stationId, alert.condition, alert.count, alert.min, alert.max])).toEqual([
      ['st-a', 'above', 25, 10, 20],
      ['st-b', 'below', 0, 10, 20],
    ]);
    expect(closed.alerts[1].alertId).toBe(`traffic/st-b/${t0}/BELOW_MINIMUM/${records.get('st-b')?.versions[0].version}`);
    const within = applyTrafficBatch(state, { watermarkMs: t0 + 2 * slotMs, windows: [window('st-a', 1, 15), window('st-b', 1, 10)] }, references, options);
    expect(within.alerts).toEqual([]);
  });

  it('resolves with a late amendment, ignores duplicates and replays', () => {
    const state = newPartitionState(0);
    applyTrafficBatch(state, { watermarkMs: t0, windows: [] }, references, options);
    const first = applyTrafficBatch(state, { watermarkMs: t0 + slotMs, windows: [window('st-a', 0, 3), window('st-b', 0, 12)] }, references, options);
    expect(first.alerts.map((alert) => alert.condition)).toEqual(['below']);
    const again = applyTrafficBatch(state, { watermarkMs: t0 + slotMs, windows: [window('st-a', 0, 3)] }, references, options);
    expect(again).toMatchObject({ alerts: [], duplicates: 1 });
    const amended = applyTrafficBatch(state, { watermarkMs: t0 + slotMs + 60_000, windows: [window('st-a', 0, 11, 2)] }, references, options);
    expect(amended.alerts.map((alert) => [alert.condition, alert.count, alert.alertId])).toEqual([['back-within', 11, `${first.alerts[0].alertId}/resolved`]]);
    expect(applyTrafficBatch(state, { watermarkMs: t0 + slotMs + 60_000, windows: [window('st-a', 0, 11, 2)] }, references, options).alerts).toEqual([]);
  });

  it('gives the same alerts for the same input from the same state (replay after a crash)', () => {
    const input = [
      { watermarkMs: t0, windows: [] },
      { watermarkMs: t0 + 3 * slotMs, windows: [window('st-a', 0, 3), window('st-a', 1, 30), window('st-b', 2, 12)] },
      { watermarkMs: t0 + 3 * slotMs, windows: [window('st-a', 0, 12, 2)] },
    ];
    const run = () => {
      const state = newPartitionState(0);
      return input.flatMap((batch) => applyTrafficBatch(state, batch, references, options).alerts.map((alert) => alert.alertId));
    };
    expect(run()).toEqual(run());
    expect(run()).toHaveLength(6); // a below, a above, b below ×2 (silent slots 0,1), a resolved
  });

  it('drops slots after the lateness and bounds the catch-up', () => {
    const state = newPartitionState(0);
    applyTrafficBatch(state, { watermarkMs: t0, windows: [] }, references, options);
    const result = applyTrafficBatch(state, { watermarkMs: t0 + 4 * slotMs, windows: [] }, references, options);
    expect(result.evaluations).toBe(8);
    expect(Object.keys(state.slots)).toHaveLength(6); // slot 0 is beyond end + lateness already
    applyTrafficBatch(state, { watermarkMs: t0 + 8 * slotMs, windows: [] }, references, options);
    expect(Object.keys(state.slots).length).toBeLessThanOrEqual(12);
    expect(applyTrafficBatch(state, { watermarkMs: t0 + 8 * slotMs, windows: [window('st-a', 0, 12, 2)] }, references, options).tooLate).toBe(1);
  });
});
