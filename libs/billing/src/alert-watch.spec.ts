import { AlertWatch } from './alert-watch';

describe('AlertWatch (which arriving spend may raise an alert)', () => {
  it('flags spend that, with what arrived before and is not applied yet, reaches the known headroom', () => {
    const watch = new AlertWatch();
    expect(watch.arrive('acct-a', 10_000)).toBe(false); // unknown account: no hint
    watch.thresholdChanged('acct-a', 1_000);
    expect(watch.arrive('acct-a', 600)).toBe(false);
    expect(watch.arrive('acct-a', 600)).toBe(true); // 1,200 pending ≥ 1,000
    // The first 600 were applied: headroom 400 now, 600 still pending.
    watch.applied('acct-a', 600, 400);
    expect(watch.arrive('acct-a', 0)).toBe(true);
    watch.applied('acct-a', 600, undefined); // alerted: nothing more to watch this month
    expect(watch.arrive('acct-a', 5_000)).toBe(false);
    expect(watch.size).toBe(0);
  });

  it('forgets accounts whose threshold was cleared, and the least recently seen beyond its bound', () => {
    const watch = new AlertWatch(2);
    watch.thresholdChanged('acct-a', 100);
    watch.thresholdChanged('acct-b', 100);
    watch.applied('acct-a', 0, 100); // a seen again: b is now the least recently seen
    watch.thresholdChanged('acct-c', 100);
    expect(watch.size).toBe(2);
    expect(watch.arrive('acct-b', 100)).toBe(false);
    expect(watch.arrive('acct-a', 100)).toBe(true);
    expect(watch.arrive('acct-c', 100)).toBe(true);
    watch.thresholdChanged('acct-c', undefined);
    expect(watch.arrive('acct-c', 100)).toBe(false);
  });
});
