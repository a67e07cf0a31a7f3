import { DuplicateIndex } from './duplicate-index';

describe('DuplicateIndex', () => {
  it('remembers the first batch that stored a transaction of a station', () => {
    const index = new DuplicateIndex();
    index.add('st-1', 'tx-1', 'batch-a', 0);
    index.add('st-1', 'tx-1', 'batch-b', 0);
    expect(index.batchOf('st-1', 'tx-1')).toBe('batch-a');
    expect(index.has('st-2', 'tx-1')).toBe(false);
    expect(index.size).toBe(1);
  });

  it('forgets only transactions whose event hour is wholly before the cutoff', () => {
    const index = new DuplicateIndex();
    const hour = 3600_000;
    index.add('st-1', 'a', 'b1', 10 * hour + 5);
    index.add('st-1', 'b', 'b1', 11 * hour + 5);
    index.add('st-2', 'c', 'b1', 12 * hour);
    expect(index.forgetBefore(11 * hour + 30 * 60_000)).toBe(1);
    expect([index.has('st-1', 'a'), index.has('st-1', 'b'), index.has('st-2', 'c')]).toEqual([false, true, true]);
    expect(index.size).toBe(2);
    expect(index.forgetBefore(13 * hour)).toBe(2);
    expect(index.size).toBe(0);
  });
});
