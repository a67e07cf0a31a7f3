const hourMs = 3600_000;

/**
 * Transactions already in the stream, by `stationId|transactionId`, for as long as a retry of
 * them can still be accepted (the acceptance horizon, by event time). Maps each key to the id of
 * the batch that stored it, so a writer can tell its own landed append from someone else's.
 * Memory is about 120 bytes per key: size the horizon for the traffic (docs/adr/0003).
 */
export class DuplicateIndex {
  private readonly batchByKey = new Map<string, string>();
  private readonly keysByHour = new Map<number, string[]>();

  get size(): number {
    return this.batchByKey.size;
  }

  batchOf(key: string): string | undefined {
    return this.batchByKey.get(key);
  }

  has(key: string): boolean {
    return this.batchByKey.has(key);
  }

  /** Records that `key` was stored by `batchId`; the first writer wins. */
  add(key: string, batchId: string, occurredAtMs: number): void {
    if (this.batchByKey.has(key)) return;
    this.batchByKey.set(key, batchId);
    const hour = Math.floor(occurredAtMs / hourMs);
    const keys = this.keysByHour.get(hour);
    if (keys) keys.push(key);
    else this.keysByHour.set(hour, [key]);
  }

  /** Forgets keys whose event time is entirely before `cutoffMs` (they would be rejected as too old anyway). */
  forgetBefore(cutoffMs: number): number {
    const cutoffHour = Math.floor(cutoffMs / hourMs);
    let forgotten = 0;
    for (const [hour, keys] of this.keysByHour) {
      if (hour >= cutoffHour) continue;
      for (const key of keys) this.batchByKey.delete(key);
      forgotten += keys.length;
      this.keysByHour.delete(hour);
    }
    return forgotten;
  }
}

export const duplicateKey = (stationId: string, transactionId: string): string => `${stationId}|${transactionId}`;
