const hourMs = 3600_000;

interface HourBucket {
  stationIds: string[];
  transactionIds: string[];
}

/**
 * Transactions already in the stream, by station and transaction id, for as long as a retry of
 * them can still be accepted (the acceptance horizon, by event time). One set per station keyed by
 * the station's own transaction id: no key concatenation and one hash lookup per operation on the
 * hot path. Memory is about 100 bytes per transaction: size the horizon for the traffic (docs/adr/0003).
 */
export class DuplicateIndex {
  private readonly byStation = new Map<string, Set<string>>();
  private readonly byHour = new Map<number, HourBucket>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(stationId: string, transactionId: string): boolean {
    return this.byStation.get(stationId)?.has(transactionId) ?? false;
  }

  /** Records that the transaction is stored; false if it was known already. */
  add(stationId: string, transactionId: string, occurredAtMs: number): boolean {
    let station = this.byStation.get(stationId);
    if (!station) {
      station = new Set();
      this.byStation.set(stationId, station);
    }
    const before = station.size;
    station.add(transactionId);
    if (station.size === before) return false;
    this.count++;
    const hour = Math.floor(occurredAtMs / hourMs);
    let bucket = this.byHour.get(hour);
    if (!bucket) {
      bucket = { stationIds: [], transactionIds: [] };
      this.byHour.set(hour, bucket);
    }
    bucket.stationIds.push(stationId);
    bucket.transactionIds.push(transactionId);
    return true;
  }

  /** Forgets transactions whose event hour is entirely before `cutoffMs` (they would be rejected as too old anyway). */
  forgetBefore(cutoffMs: number): number {
    const cutoffHour = Math.floor(cutoffMs / hourMs);
    let forgotten = 0;
    for (const [hour, bucket] of this.byHour) {
      if (hour >= cutoffHour) continue;
      bucket.transactionIds.forEach((transactionId, i) => {
        const station = this.byStation.get(bucket.stationIds[i]);
        if (station?.delete(transactionId)) forgotten++;
        if (station?.size === 0) this.byStation.delete(bucket.stationIds[i]);
      });
      this.byHour.delete(hour);
    }
    this.count -= forgotten;
    return forgotten;
  }
}
