/**
 * Partition of the transaction stream that a station's records go to. FNV-1a (32 bit) of the
 * station id: stable across processes, languages and releases, so a station's records always land
 * in one partition and per-station order and counts are complete there.
 */
export function partitionForStation(stationId: string, partitionCount: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < stationId.length; i++) {
    hash ^= stationId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitionCount;
}
