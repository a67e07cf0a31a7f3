import { DuplicateIndex } from './duplicate-index';

describe('DuplicateIndex', () => {
  it('remembers transactions per station and says when one was known already', () => {
    const index = new DuplicateIndex();
    expect(index.add('st-1', 'tx-1', 0)).toBe(true);
    expect(index.add('st-1', 'tx-1', 0)).toBe(false);
    expect(index.has('st-1', 'tx-1')).toBe(true);
    expect(index.has('st-2', 'tx-1')).toBe(false);
    expect(index.size).toBe(1);
  });

  it('forgets only transactions whose event hour is wholly before the cutoff', () => {
    const index = new DuplicateIndex();
    const hour = 3600_000;
    index.add('st-1', 'a', 10 * hour + 5);
    index.add('st-1', 'b', 11 * hour + 5);
    index.add('st-2', 'c', 12 * hour);
    expect(index.forgetBefore(11 * hour + 30 * 60_000)).toBe(1);
    expect([index.has('st-1', 'a'), index.has('st-1', 'b'), index.has('st-2', 'c')]).toEqual([false, true, true]);
    expect(index.size).toBe(2);
    expect(index.forgetBefore(13 * hour)).toBe(2);
    expect(index.size).toBe(0);
  });
});
