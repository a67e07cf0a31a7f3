const hourMs = 3600_000;

interface HourBucket {
  stationIds: string[];
  transactionIds: string[];
}

/**
 * Transactions already in the stream, by station and transaction id, for as long as a retry of
 * them can still be accepted (the acceptance horizon, by event time). Maps each transaction to the
 * id of the batch that stored it, so a writer can tell its own landed append from someone else's.
 * One map per station keyed by the station's own transaction id: no key concatenation on the hot
 * path. Memory is about 100-120 bytes per transaction: size the horizon for the traffic (docs/adr/0003).
 */
export class DuplicateIndex {
  private readonly byStation = new Map<string, Map<string, string>>();
  private readonly byHour = new Map<number, HourBucket>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  batchOf(stationId: string, transactionId: string): string | undefined {
    return this.byStation.get(stationId)?.get(transactionId);
  }

  has(stationId: string, transactionId: string): boolean {
    return this.byStation.get(stationId)?.has(transactionId) ?? false;
  }

  /** Records that the transaction was stored by `batchId`; the first writer wins. */
  add(stationId: string, transactionId: string, batchId: string, occurredAtMs: number): void {
    let station = this.byStation.get(stationId);
    if (!station) {
      station = new Map();
      this.byStation.set(stationId, station);
    }
    if (station.has(transactionId)) return;
    station.set(transactionId, batchId);
    this.count++;
    const hour = Math.floor(occurredAtMs / hourMs);
    let bucket = this.byHour.get(hour);
    if (!bucket) {
      bucket = { stationIds: [], transactionIds: [] };
      this.byHour.set(hour, bucket);
    }
    bucket.stationIds.push(stationId);
    bucket.transactionIds.push(transactionId);
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
