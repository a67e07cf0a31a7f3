import fc from 'fast-check';
import { partitionForStation, shardForAccount } from './partitioning';

describe('shardForAccount', () => {
  it('is the same FNV-1a hash of the account id, so every reader computes the same shard', () => {
    expect(shardForAccount('acct-42', 8)).toBe(fnv1a('acct-42') % 8);
    expect(shardForAccount('acct-42', 1)).toBe(0);
  });
});

describe('partitionForStation', () => {
  it('is the FNV-1a hash of the station id: fixed values that must never change (ADR 0004)', () => {
    expect([partitionForStation('st-001', 8), partitionForStation('st-002', 8), partitionForStation('', 8)]).toEqual([
      fnv1a('st-001') % 8,
      fnv1a('st-002') % 8,
      0x811c9dc5 % 8,
    ]);
    expect(fnv1a('a')).toBe(0xe40c292c); // published FNV-1a 32 test vector
  });

  it('always lands in [0, partitions)', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 1024 }), (stationId, partitions) => {
        const partition = partitionForStation(stationId, partitions);
        return Number.isInteger(partition) && partition >= 0 && partition < partitions;
      }),
    );
  });

  it('spreads many stations over the partitions', () => {
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[partitionForStation(`st-${i}`, 8)]++;
    expect(Math.min(...counts)).toBeGreaterThan(800);
  });
});

function fnv1a(text: string): number {
  // Reference implementation over UTF-16 code units, written independently of the one under test.
  let hash = BigInt(0x811c9dc5);
  for (const unit of Array.from({ length: text.length }, (_, i) => text.charCodeAt(i))) {
    hash = ((hash ^ BigInt(unit)) * BigInt(0x01000193)) % BigInt(2 ** 32);
  }
  return Number(hash);
}
