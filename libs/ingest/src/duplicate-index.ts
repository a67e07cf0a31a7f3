const hourMs = 3600_000;
const emptySlot = 0;

/** 64-bit fingerprint of a transaction identity as two 32-bit halves; lo is never 0 (0 marks an empty slot). */
export type Fingerprint = (stationId: string, transactionId: string) => [hi: number, lo: number];

/** Two independent 32-bit hashes (FNV-1a and a murmur-style mix) over station, NUL, transaction id. */
export const fingerprintOf: Fingerprint = (stationId, transactionId) => {
  // Hot path (twice per record): plain loops, no closures.
  let fnv = 0x811c9dc5;
  let mix = 0x9747b28c;
  for (let i = 0; i < stationId.length; i++) {
    const code = stationId.charCodeAt(i);
    fnv = Math.imul(fnv ^ code, 0x01000193);
    mix = Math.imul(mix ^ code, 0x5bd1e995);
    mix ^= mix >>> 15;
  }
  fnv = Math.imul(fnv, 0x01000193); // the NUL separator
  mix = Math.imul(mix, 0x5bd1e995);
  mix ^= mix >>> 15;
  for (let i = 0; i < transactionId.length; i++) {
    const code = transactionId.charCodeAt(i);
    fnv = Math.imul(fnv ^ code, 0x01000193);
    mix = Math.imul(mix ^ code, 0x5bd1e995);
    mix ^= mix >>> 15;
  }
  mix = Math.imul(mix ^ (mix >>> 13), 0xc2b2ae35);
  mix ^= mix >>> 16;
  return [fnv >>> 0, (mix | 1) >>> 0];
};

/**
 * Transactions already in the stream, for as long as a retry of them can still be accepted (the
 * acceptance horizon, by event time), and the stream sequence of the batch that holds each.
 *
 * Kept outside the garbage-collected heap: an open-addressing table of 64-bit fingerprints in typed
 * arrays (about 30-60 bytes per transaction, no objects for the GC to trace, so no long pauses as
 * the index grows to millions). A fingerprint match is only a candidate: the caller verifies it
 * against the batch at the returned sequence (see TransactionLog). Two different transactions with
 * the same fingerprint — about one in 10^12 at ten million entries — are kept exactly in a small
 * map of full keys, so the index never loses one.
 */
export class DuplicateIndex {
  private capacity: number;
  private hi: Uint32Array;
  private lo: Uint32Array;
  private sequences: Float64Array;
  private hours: Int32Array;
  private used = 0;
  private oldestHour = Number.POSITIVE_INFINITY;
  /** Exact keys of fingerprint collisions (expected to stay empty). */
  private readonly collisions = new Map<string, { sequence: number; hour: number }>();

  constructor(
    private readonly fingerprint: Fingerprint = fingerprintOf,
    initialCapacity = 1 << 16,
  ) {
    this.capacity = 1 << Math.ceil(Math.log2(Math.max(16, initialCapacity)));
    this.hi = new Uint32Array(this.capacity);
    this.lo = new Uint32Array(this.capacity);
    this.sequences = new Float64Array(this.capacity);
    this.hours = new Int32Array(this.capacity);
  }

  get size(): number {
    return this.used + this.collisions.size;
  }

  /** Stream sequence of a batch that may hold this transaction, or undefined if it is certainly new. */
  candidate(stationId: string, transactionId: string): number | undefined {
    const [hi, lo] = this.fingerprint(stationId, transactionId);
    const slot = this.find(hi, lo);
    return slot === -1 ? undefined : this.sequences[slot];
  }

  /** Exactly known through a collision entry (checked when the candidate batch does not hold it). */
  knownExactly(stationId: string, transactionId: string): boolean {
    return this.collisions.has(`${stationId}\u0000${transactionId}`);
  }

  /**
   * Records a transaction stored in the batch at `sequence`. Callers add only transactions they know
   * to be new, so an occupied fingerprint means a collision: it is kept by its exact key.
   */
  add(stationId: string, transactionId: string, sequence: number, occurredAtMs: number): void {
    const [hi, lo] = this.fingerprint(stationId, transactionId);
    const hour = Math.floor(occurredAtMs / hourMs);
    if (this.find(hi, lo) !== -1) {
      this.collisions.set(`${stationId}\u0000${transactionId}`, { sequence, hour });
      return;
    }
    if ((this.used + 1) * 10 > this.capacity * 7) this.rebuild(this.capacity * 2, Number.NEGATIVE_INFINITY);
    this.insert(hi, lo, sequence, hour);
  }

  /** Forgets transactions whose event hour is entirely before `cutoffMs` (they would be rejected as too old anyway). */
  forgetBefore(cutoffMs: number): number {
    const cutoffHour = Math.floor(cutoffMs / hourMs);
    if (cutoffHour <= this.oldestHour) return 0;
    const before = this.size;
    for (const [key, entry] of this.collisions) if (entry.hour < cutoffHour) this.collisions.delete(key);
    this.rebuild(this.capacity, cutoffHour);
    return before - this.size;
  }

  private find(hi: number, lo: number): number {
    const mask = this.capacity - 1;
    for (let slot = (lo ^ hi) & mask; ; slot = (slot + 1) & mask) {
      const slotLo = this.lo[slot];
      if (slotLo === emptySlot) return -1;
      if (slotLo === lo && this.hi[slot] === hi) return slot;
    }
  }

  private insert(hi: number, lo: number, sequence: number, hour: number): void {
    const mask = this.capacity - 1;
    let slot = (lo ^ hi) & mask;
    while (this.lo[slot] !== emptySlot) slot = (slot + 1) & mask;
    this.hi[slot] = hi;
    this.lo[slot] = lo;
    this.sequences[slot] = sequence;
    this.hours[slot] = hour;
    this.used++;
    if (hour < this.oldestHour) this.oldestHour = hour;
  }

  /** Re-inserts every entry of at least `keepFromHour` into a table of `capacity` slots. */
  private rebuild(capacity: number, keepFromHour: number): void {
    const [hi, lo, sequences, hours, oldCapacity] = [this.hi, this.lo, this.sequences, this.hours, this.capacity];
    this.capacity = capacity;
    this.hi = new Uint32Array(capacity);
    this.lo = new Uint32Array(capacity);
    this.sequences = new Float64Array(capacity);
    this.hours = new Int32Array(capacity);
    this.used = 0;
    this.oldestHour = Number.POSITIVE_INFINITY;
    for (let slot = 0; slot < oldCapacity; slot++) {
      if (lo[slot] !== emptySlot && hours[slot] >= keepFromHour) this.insert(hi[slot], lo[slot], sequences[slot], hours[slot]);
    }
  }
}
