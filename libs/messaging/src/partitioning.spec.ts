import fc from 'fast-check';
import { pageOfAccount, partitionForStation, shardForAccount } from './partitioning';

describe('shardForAccount', () => {
  it('is the same FNV-1a hash of the account id, so every reader computes the same shard', () => {
    expect(shardForAccount('acct-42', 8)).toBe(fnv1a('acct-42') % 8);
    expect(shardForAccount('acct-42', 1)).toBe(0);
  });
});

describe('pageOfAccount', () => {
  it('spreads the accounts of every shard over all pages (independent of the shard taken from the same hash)', () => {
    const shards = 8;
    const pages = 64;
    const used = Array.from({ length: shards }, () => new Array<number>(pages).fill(0));
    for (let i = 0; i < 64_000; i++) {
      const accountId = `acct-${i}`;
      used[shardForAccount(accountId, shards)][pageOfAccount(accountId, pages)]++;
    }
    // 125 accounts per page of a shard on average: none empty, none far off.
    for (const counts of used) expect([Math.min(...counts) > 60, Math.max(...counts) < 200]).toEqual([true, true]);
  });

  it('always lands in [0, pages) and is stable', () => {
    fc.assert(fc.property(fc.string(), fc.integer({ min: 1, max: 100_000 }), (accountId, pages) => {
      const page = pageOfAccount(accountId, pages);
      return Number.isInteger(page) && page >= 0 && page < pages && page === pageOfAccount(accountId, pages);
    }));
    // Stored read models are laid out by it: these values must never change.
    expect([pageOfAccount('acct-42', 512), pageOfAccount('a.1', 512), pageOfAccount('', 512), pageOfAccount('acct-42', 100_000)]).toEqual([422, 364, 11, 5414]);
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
