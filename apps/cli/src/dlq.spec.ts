import type { RedriveSummary } from '@tollstream/dead-letters';
import { formatRedriveSummary, redriveExitCode, redriveReporter } from './dlq';
import { memoryStream } from './test-support';

const summary = (overrides: Partial<RedriveSummary> = {}): RedriveSummary => ({
  runId: 'run-1',
  dryRun: false,
  selected: 4,
  counts: { accepted: 2, duplicate: 1, 'rejected-again': 0, republished: 0, failed: 0, 'not-redrivable': 0, 'already-redriven': 1 },
  items: [
    { id: 7, source: 'ingestor', reasonCode: 'PERMISSION_DENIED', stationId: 'st-b', action: 'station-api', outcome: 'accepted', detail: 'stored as tx-7' },
    { id: 9, source: 'ingestor', reasonCode: 'TOO_OLD', stationId: 'st-a', action: 'already-redriven', detail: 'accepted by op at 2026-12-07T10:00:00Z' },
  ],
  incomplete: false,
  ...overrides,
});

describe('dlq redrive output', () => {
  it('exits 0 when everything is settled, 2 when something is still wrong or not re-drivable, 130 when interrupted', () => {
    expect(redriveExitCode(summary())).toBe(0);
    expect(redriveExitCode(summary({ counts: { ...summary().counts, 'rejected-again': 1 } }))).toBe(2);
    expect(redriveExitCode(summary({ counts: { ...summary().counts, 'not-redrivable': 1 } }))).toBe(2);
    expect(redriveExitCode(summary({ counts: { ...summary().counts, failed: 1 } }))).toBe(2);
    expect(redriveExitCode(summary({ incomplete: true }))).toBe(130);
  });

  it('summarises the counts and lists what happened, without the dead letters left alone', () => {
    const text = formatRedriveSummary(summary());
    expect(text).toMatch(/^re-drive run-1: 4 dead letters selected\n/);
    expect(text).toMatch(/ {2}accepted +2 {2}stored by the station API now/);
    expect(text).toMatch(/ {2}already re-driven +1 {2}left alone/);
    expect(text).toMatch(/7 │ ingestor │ PERMISSION_DENIED │ st-b +│ accepted │ stored as tx-7/);
    expect(text).not.toContain('TOO_OLD');
    const dry = formatRedriveSummary(summary({ dryRun: true, items: [{ id: 3, source: 'notifier', reasonCode: 'UNDECODABLE', stationId: '', action: 'republish', detail: 'would republish to tolls.alerts.spending' }] }));
    expect(dry).toMatch(/^dry run \(nothing re-driven\)/);
    expect(dry).not.toContain('stored by the station API');
    expect(dry).toMatch(/3 │ notifier │ UNDECODABLE +│ +│ republish │ would republish to tolls\.alerts\.spending/);
  });

  it('reports progress off a terminal as plain lines, the last one at the end', () => {
    const err = memoryStream();
    const reporter = redriveReporter(err.stream, false, true, 60_000);
    const counts = summary().counts;
    reporter.update({ total: 10, done: 0, counts });
    reporter.update({ total: 10, done: 5, counts });
    reporter.update({ total: 10, done: 10, counts });
    reporter.stop();
    expect(err.text()).toBe(
      're-drive: 0/10 | accepted 2 duplicate 1 rejected again 0 republished 0 failed 0\n' + 're-drive: 10/10 | accepted 2 duplicate 1 rejected again 0 republished 0 failed 0\n',
    );
    const silent = memoryStream();
    const off = redriveReporter(silent.stream, false, false);
    off.update({ total: 1, done: 1, counts });
    off.stop();
    expect(silent.text()).toBe('');
  });
});
