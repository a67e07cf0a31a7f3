import fc from 'fast-check';
import { DuplicateIndex, fingerprintOf, type Fingerprint } from './duplicate-index';

const hour = 3600_000;

describe('DuplicateIndex', () => {
  it('points a known transaction to the batch sequence that holds it, per station', () => {
    const index = new DuplicateIndex();
    index.add('st-1', 'tx-1', 42, 0);
    expect(index.candidate('st-1', 'tx-1')).toBe(42);
    expect(index.candidate('st-2', 'tx-1')).toBeUndefined();
    expect(index.candidate('st-1', 'tx-2')).toBeUndefined();
    expect(index.size).toBe(1);
  });

  it('never forgets a transaction while growing (no false negatives)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(fc.constantFrom('st-1', 'st-2', 'st-3'), fc.string({ minLength: 1, maxLength: 12 })), {
        selector: ([station, id]) => `${station}|${id}`,
        maxLength: 600,
      }), (transactions) => {
        const index = new DuplicateIndex(fingerprintOf, 16);
        transactions.forEach(([station, id], i) => index.add(station, id, i + 1, 0));
        return transactions.every(([station, id], i) => index.candidate(station, id) === i + 1) && index.size === transactions.length;
      }),
    );
  });

  it('keeps colliding fingerprints exactly, by their full key', () => {
    const everythingCollides: Fingerprint = () => [7, 7];
    const index = new DuplicateIndex(everythingCollides);
    index.add('st-1', 'a', 1, 0);
    index.add('st-1', 'b', 2, 0);
    expect(index.candidate('st-1', 'b')).toBe(1); // a candidate only: the caller verifies batch 1
    expect(index.knownExactly('st-1', 'b')).toBe(true);
    expect(index.knownExactly('st-1', 'a')).toBe(false); // a is found in its batch instead
    expect(index.size).toBe(2);
  });

  it('forgets only transactions whose event hour is wholly before the cutoff, collisions included', () => {
    const index = new DuplicateIndex(fingerprintOf, 16);
    index.add('st-1', 'a', 1, 10 * hour + 5);
    index.add('st-1', 'b', 2, 11 * hour + 5);
    index.add('st-2', 'c', 3, 12 * hour);
    expect(index.forgetBefore(11 * hour + 30 * 60_000)).toBe(1);
    expect([index.candidate('st-1', 'a'), index.candidate('st-1', 'b'), index.candidate('st-2', 'c')]).toEqual([undefined, 2, 3]);
    expect(index.forgetBefore(11 * hour)).toBe(0);
    expect(index.forgetBefore(13 * hour)).toBe(2);
    expect(index.size).toBe(0);

    const colliding = new DuplicateIndex(() => [1, 1]);
    colliding.add('st-1', 'old', 1, 1 * hour);
    colliding.add('st-1', 'new', 2, 5 * hour);
    expect(colliding.forgetBefore(2 * hour)).toBe(1);
    expect(colliding.knownExactly('st-1', 'new')).toBe(true);
  });

  it('fingerprints differ for station and id boundaries and never use the empty marker', () => {
    expect(fingerprintOf('st-1', '2')).not.toEqual(fingerprintOf('st-', '12'));
    fc.assert(fc.property(fc.string(), fc.string(), (station, id) => fingerprintOf(station, id)[1] !== 0));
  });
});
