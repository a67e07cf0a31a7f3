import { DuplicateIndex, duplicateKey } from './duplicate-index';

describe('DuplicateIndex', () => {
  it('remembers the first batch that stored a key', () => {
    const index = new DuplicateIndex();
    index.add(duplicateKey('st-1', 'tx-1'), 'batch-a', 0);
    index.add(duplicateKey('st-1', 'tx-1'), 'batch-b', 0);
    expect(index.batchOf('st-1|tx-1')).toBe('batch-a');
    expect(index.has(duplicateKey('st-2', 'tx-1'))).toBe(false);
    expect(index.size).toBe(1);
  });

  it('forgets only keys whose event hour is wholly before the cutoff', () => {
    const index = new DuplicateIndex();
    const hour = 3600_000;
    index.add('a', 'b1', 10 * hour + 5);
    index.add('b', 'b1', 11 * hour + 5);
    index.add('c', 'b1', 12 * hour);
    expect(index.forgetBefore(11 * hour + 30 * 60_000)).toBe(1);
    expect([index.has('a'), index.has('b'), index.has('c')]).toEqual([false, true, true]);
  });
});
