/**
 * Partition of the transaction stream that a station's records go to. FNV-1a (32 bit) of the
 * station id: stable across processes, languages and releases, so a station's records always land
 * in one partition and per-station order and counts are complete there.
 */
export function partitionForStation(stationId: string, partitionCount: number): number {
  return fnv1a(stationId) % partitionCount;
}

/**
 * Shard of the spend results (tolls.agg.spend.<shard>) that an account's results go to: readers
 * that keep per-account state (billing) scale out by shard without two of them touching one account.
 */
export function shardForAccount(accountId: string, shardCount: number): number {
  return fnv1a(accountId) % shardCount;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * An account id's FNV-1a mixed again (murmur3's finalizer): every bit depends on every character, so
 * it can be taken modulo any number or masked to its low bits (ids differ in their last digits)
 * independently of the shard (both taken modulo small numbers of one plain FNV-1a would use only some
 * pages of each shard). Pages of the read model, and in-memory indexes of accounts.
 */
export function mixedHashOfAccount(accountId: string): number {
  let hash = fnv1a(accountId);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** Page of an account within its spend shard (the embedded read model packs a shard's accounts into pages). */
export function pageOfAccount(accountId: string, pageCount: number): number {
  return mixedHashOfAccount(accountId) % pageCount;
}
