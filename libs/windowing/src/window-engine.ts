import { alignedLayoutOf, computePane, Pane, type AlignedLayout } from './aligned-windows';
import { DeadlineHeap } from './deadline-heap';
import { ChunkReader, ChunkWriter, corrupt, isCompactInteger, SnapshotError } from './snapshot-codec';
import type { AddOutcome, WindowEngineOptions, WindowInput, WindowResult } from './types';
import { checkDuration, checkInstant, maxSubKeyCount } from './validation';
import { zoneClock, type ZoneClock } from './zone-clock';

const none = -1;
const tumbling = 0;
const sliding = 1;
const session = 2;
type Kind = typeof tumbling | typeof sliding | typeof session;

const initialCapacity = 1024;
const defaultChunkBytes = 256 * 1024;
const snapshotMagic = [0x54, 0x53, 0x57, 0x45]; // "TSWE"
const snapshotVersion = 1;
const maxStringBytes = 1 << 20;

// Snapshot entry tags.
const tagBucket = 1;
const tagWindow = 2;
const tagRetraction = 3;
const tagEnd = 0x7f;

// Window entry flags: which numbers are written as varints instead of doubles.
const startIsInteger = 1;
const sumIsInteger = 2;
const minIsInteger = 4;
const maxIsInteger = 8;

/** Windows of one deadline, in the order they got it (a list through windowNextInBucket). */
class Bucket {
  head = none;
  tail = none;
  constructor(readonly deadline: number) {}
}

/** The windows of one zone, with the last two panes looked up (out-of-order records hop between two). */
class ZoneWindows {
  current: Pane;
  private previous: Pane;

  constructor(
    readonly name: string,
    private readonly clock: ZoneClock,
    private readonly layout: AlignedLayout,
  ) {
    this.current = new Pane(layout.windowsPerRecord);
    this.previous = new Pane(layout.windowsPerRecord);
  }

  /** The pane holding t, when `current` does not. */
  paneFor(t: number): Pane {
    const other = this.previous;
    if (!(t >= other.from && t < other.to)) computePane(this.clock, this.layout, t, other);
    this.previous = this.current;
    this.current = other;
    return other;
  }
}

/**
 * Event-time windows over keyed records: tumbling and sliding windows aligned in each key's zone,
 * or per-key sessions; bounded out-of-orderness watermark with an idle rule; late records amend
 * windows for allowedLatenessMs; snapshots that restore the exact state.
 *
 * Deterministic: the outputs are a function of the sequence of calls only (no clock, no randomness,
 * every order derived from state that snapshots carry). Pure and single-threaded.
 *
 * Layout: windows live in columns of typed arrays indexed by slot (no object per window, doubles
 * unboxed), keys map to small integer indexes. Each window is in three lists: its key's windows
 * (sorted), the bucket of its next deadline (close, or purge after lateness), and possibly `pending`.
 */
export class WindowEngine {
  private readonly kind: Kind;
  private readonly layout: AlignedLayout | undefined;
  private readonly gapMs: number;
  private readonly outOfOrdernessMs: number;
  private readonly latenessMs: number;
  private readonly idleTimeoutMs: number;
  private readonly subKeyCount: number;
  private readonly defaultZone: string;
  private readonly timeZoneOfKey: ((key: string) => string) | undefined;

  // Time, in a typed array: storing a changing double in an object field allocates a heap number per
  // store, and add() stores these on most records.
  private readonly times = new Float64Array([Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, Number.NaN, Number.MIN_SAFE_INTEGER]);
  private lateCount = 0;

  // Keys.
  private readonly keyIndex = new Map<string, number>();
  private keyNames: string[] = [];
  private keyFirstWindow: Int32Array = new Int32Array(initialCapacity);
  private keyZone: Uint16Array = new Uint16Array(initialCapacity);
  private freeKeys: Int32Array = new Int32Array(initialCapacity);
  private freeKeyCount = 0;
  private keyHighWater = 0;

  // Windows, by slot.
  private capacity = initialCapacity;
  private windowStart: Float64Array = new Float64Array(initialCapacity);
  private windowEnd: Float64Array = new Float64Array(initialCapacity);
  private windowCount: Float64Array = new Float64Array(initialCapacity);
  private windowSum: Float64Array = new Float64Array(initialCapacity);
  private windowMin: Float64Array = new Float64Array(initialCapacity);
  private windowMax: Float64Array = new Float64Array(initialCapacity);
  private windowMaxEventTime: Float64Array = new Float64Array(initialCapacity);
  /** Revision last handed out; 0 = never. */
  private windowRevision: Uint32Array = new Uint32Array(initialCapacity);
  private windowKey: Int32Array = new Int32Array(initialCapacity);
  private windowNextOfKey: Int32Array = new Int32Array(initialCapacity);
  private windowPreviousOfKey: Int32Array = new Int32Array(initialCapacity);
  /** Also the free list of slots. */
  private windowNextInBucket: Int32Array = new Int32Array(initialCapacity);
  /** Sessions only (they leave buckets one by one): previous in bucket, and the bucket's deadline. */
  private windowPreviousInBucket: Int32Array;
  private windowDeadline: Float64Array;
  private subKeyCounts: Uint32Array;
  private freeSlot = none;
  private slotHighWater = 0;
  private liveWindows = 0;

  // Deadlines: each window is in the bucket of a deadline at or before its due time (when it closes,
  // or when it is purged); takeResults visits only buckets whose deadline the watermark passed.
  private readonly buckets = new Map<number, Bucket>();
  private readonly deadlines = new DeadlineHeap();
  private lastBucket: Bucket | undefined;
  /** Closed windows changed since their last emission (or never emitted), in the order they became due. */
  private readonly pending = new Set<number>();
  /** Session retractions not yet taken. */
  private retractions: WindowResult[] = [];

  // Zones.
  private readonly zones: ZoneWindows[] = [];
  private readonly zoneIds = new Map<string, number>();
  private lastZoneName = '';
  private lastZoneId = 0;

  private snapshotsInProgress = 0;

  constructor(options: WindowEngineOptions) {
    if (options === null || typeof options !== 'object') throw new Error('WindowEngine options are required');
    const spec = options.window;
    if (spec === null || typeof spec !== 'object') throw new Error('options.window is required');
    checkDuration('outOfOrdernessMs', options.outOfOrdernessMs, true);
    checkDuration('allowedLatenessMs', options.allowedLatenessMs, true);
    checkDuration('idleTimeoutMs', options.idleTimeoutMs, false);
    const subKeyCount = options.subKeyCount ?? 0;
    if (!Number.isSafeInteger(subKeyCount) || subKeyCount < 0 || subKeyCount > maxSubKeyCount) {
      throw new Error(`subKeyCount must be an integer from 0 to ${maxSubKeyCount} (got ${String(options.subKeyCount)})`);
    }
    if (options.timeZoneOfKey !== undefined && typeof options.timeZoneOfKey !== 'function') {
      throw new Error('timeZoneOfKey must be a function');
    }
    this.outOfOrdernessMs = options.outOfOrdernessMs;
    this.latenessMs = options.allowedLatenessMs;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.subKeyCount = subKeyCount;
    this.subKeyCounts = new Uint32Array(subKeyCount * initialCapacity);

    if (spec.kind === 'session') {
      checkDuration('window.gapMs', spec.gapMs, false);
      this.kind = session;
      this.gapMs = spec.gapMs;
      this.layout = undefined;
      this.defaultZone = 'UTC';
      this.timeZoneOfKey = undefined;
      this.windowPreviousInBucket = new Int32Array(initialCapacity);
      this.windowDeadline = new Float64Array(initialCapacity);
      this.registerZone('UTC');
    } else if (spec.kind === 'tumbling' || spec.kind === 'sliding') {
      this.kind = spec.kind === 'tumbling' ? tumbling : sliding;
      this.layout = alignedLayoutOf(spec);
      this.gapMs = 0;
      if (spec.timeZone !== undefined && typeof spec.timeZone !== 'string') throw new Error('window.timeZone must be a string');
      this.defaultZone = spec.timeZone ?? 'UTC';
      this.timeZoneOfKey = options.timeZoneOfKey;
      this.windowPreviousInBucket = new Int32Array(0);
      this.windowDeadline = new Float64Array(0);
      this.registerZone(this.defaultZone); // validates it
    } else {
      throw new Error(`window.kind must be 'tumbling', 'sliding' or 'session' (got ${String((spec as { kind: unknown }).kind)})`);
    }
  }

  private get watermark(): number {
    return this.times[0];
  }
  private set watermark(value: number) {
    this.times[0] = value;
  }
  private get maxEventTime(): number {
    return this.times[1];
  }
  private set maxEventTime(value: number) {
    this.times[1] = value;
  }
  private get lastActivityLogTime(): number {
    return this.times[2];
  }
  private set lastActivityLogTime(value: number) {
    this.times[2] = value;
  }
  /** Watermark of the last takeResults: windows ending at or before it have been handed out. */
  private get closedWatermark(): number {
    return this.times[3];
  }
  private set closedWatermark(value: number) {
    this.times[3] = value;
  }

  get watermarkMs(): number {
    return this.watermark;
  }

  get openWindowCount(): number {
    return this.liveWindows;
  }

  get lateRecordCount(): number {
    return this.lateCount;
  }

  /** Applies one record. 'late' = beyond allowed lateness for every window it belongs to: not applied. */
  add(input: WindowInput): AddOutcome {
    if (this.snapshotsInProgress !== 0) throw this.busy();
    const t = input.eventTimeMs;
    const value = input.value;
    const subKey = input.subKey;
    checkInstant('eventTimeMs', t);
    if (!Number.isFinite(value)) throw new RangeError(`value must be a finite number (got ${value})`);
    if (subKey !== undefined && !(Number.isInteger(subKey) && subKey >= 0 && subKey < this.subKeyCount)) {
      throw new RangeError(
        this.subKeyCount === 0
          ? `subKey ${subKey} given, but the engine counts no sub-keys (subKeyCount is 0)`
          : `subKey must be an integer from 0 to ${this.subKeyCount - 1} (got ${subKey})`,
      );
    }
    // The record travels as the object: doubles passed to a call that is not inlined get boxed (an allocation per record).
    const outcome = this.kind === session ? this.addToSession(input) : this.addAligned(input);
    if (t > this.maxEventTime) {
      this.maxEventTime = t;
      const candidate = t - this.outOfOrdernessMs;
      if (candidate > this.watermark) this.watermark = candidate;
    }
    return outcome;
  }

  /**
   * Called once per input message, after its records were added, with the message's log (append)
   * time: once no record arrived for idleTimeoutMs of log time, the watermark follows log time.
   */
  advanceLogTime(logTimeMs: number, carriedRecords: boolean): void {
    if (this.snapshotsInProgress !== 0) throw this.busy();
    checkInstant('logTimeMs', logTimeMs);
    if (Number.isNaN(this.lastActivityLogTime) || carriedRecords) {
      this.lastActivityLogTime = logTimeMs;
    } else if (logTimeMs - this.lastActivityLogTime >= this.idleTimeoutMs) {
      const candidate = logTimeMs - this.idleTimeoutMs;
      if (candidate > this.watermark) this.watermark = candidate;
    }
  }

  /**
   * Results due since the last call, in this order: session retractions (in the order they
   * happened); amendments and first emissions of windows that were already closed at the last call
   * (in the order they changed); then windows the watermark closed since the last call, by end and,
   * within one end, in the order they were filed (creation order, for aligned windows). Windows
   * expired by then (end + allowedLateness <= watermark) leave the state after these.
   */
  takeResults(): WindowResult[] {
    if (this.snapshotsInProgress !== 0) throw this.busy();
    const results: WindowResult[] = [];
    const retractions = this.retractions;
    if (retractions.length > 0) {
      for (let i = 0; i < retractions.length; i++) results.push(retractions[i]);
      this.retractions = [];
    }
    if (this.pending.size > 0) {
      for (const slot of this.pending) results.push(this.resultOf(slot, ++this.windowRevision[slot], false));
      this.pending.clear();
    }
    const watermark = this.watermark;
    const closedBefore = this.closedWatermark;
    this.closedWatermark = watermark;
    const lateness = this.latenessMs;
    while (this.deadlines.peek() <= watermark) {
      const deadline = this.deadlines.pop();
      const bucket = this.buckets.get(deadline) as Bucket;
      this.buckets.delete(deadline);
      if (this.lastBucket === bucket) this.lastBucket = undefined;
      let slot = bucket.head;
      while (slot !== none) {
        const next = this.windowNextInBucket[slot];
        const end = this.windowEnd[slot];
        const closing = end > closedBefore;
        const due = closing ? end : end + lateness;
        if (due > deadline) {
          // A session that grew since it got this deadline: re-filed at its own (maybe later in this loop, so ends stay in order).
          this.appendToBucket(slot, due);
        } else {
          if (closing) results.push(this.resultOf(slot, ++this.windowRevision[slot], false));
          if (end + lateness <= watermark) this.purge(slot);
          else this.appendToBucket(slot, end + lateness);
        }
        slot = next;
      }
    }
    return results;
  }

  /**
   * The state as a compact binary stream: each chunk at most maxChunkBytes, except a chunk holding a
   * single larger entry. Streamed from the live state: the engine refuses changes until the
   * generator finishes (or is returned).
   */
  *snapshotChunks(maxChunkBytes: number = defaultChunkBytes): Generator<Uint8Array> {
    if (!Number.isSafeInteger(maxChunkBytes) || maxChunkBytes < 1) {
      throw new RangeError(`maxChunkBytes must be a positive integer (got ${maxChunkBytes})`);
    }
    this.snapshotsInProgress++;
    try {
      const out = new ChunkWriter(maxChunkBytes);
      this.writeHeader(out);
      out.endEntry();
      for (const retraction of this.retractions) {
        out.u8(tagRetraction);
        this.writeRetraction(out, retraction);
        out.endEntry();
      }
      if (out.ready.length > 0) yield* out.ready.splice(0);

      const pendingRank = new Map<number, number>();
      for (const slot of this.pending) pendingRank.set(slot, pendingRank.size + 1);
      // Keys are written with their first window, then referred to by the order they were written in.
      const keyOrdinal = new Int32Array(this.keyHighWater).fill(-1);
      let keysWritten = 0;
      let windowsWritten = 0;
      for (const bucket of this.buckets.values()) {
        out.u8(tagBucket);
        out.f64(bucket.deadline);
        out.endEntry();
        for (let slot = bucket.head; slot !== none; slot = this.windowNextInBucket[slot]) {
          const key = this.windowKey[slot];
          out.u8(tagWindow);
          if (keyOrdinal[key] === -1) {
            keyOrdinal[key] = keysWritten++;
            out.varuint(0);
            out.string(this.keyNames[key]);
            out.varuint(this.keyZone[key]);
          } else {
            out.varuint(keyOrdinal[key] + 1);
          }
          this.writeWindow(out, slot, pendingRank.get(slot) ?? 0);
          out.endEntry();
          windowsWritten++;
          if (out.ready.length > 0) yield* out.ready.splice(0);
        }
        if (out.ready.length > 0) yield* out.ready.splice(0);
      }
      out.u8(tagEnd);
      out.varuint(windowsWritten);
      out.varuint(keysWritten);
      out.finish();
      yield* out.ready.splice(0);
    } finally {
      this.snapshotsInProgress--;
    }
  }

  /** An engine in exactly the state of the snapshot. Throws on corrupt or truncated input, another format version, or other options. */
  static restore(options: WindowEngineOptions, chunks: Iterable<Uint8Array>): WindowEngine {
    const engine = new WindowEngine(options);
    const input = new ChunkReader(chunks[Symbol.iterator]());
    engine.readHeader(input);
    const restoredPending: number[] = [];
    let bucketDeadline = Number.NaN;
    const keysByOrdinal: number[] = [];
    let windowsRead = 0;
    for (;;) {
      const tag = input.u8();
      if (tag === tagBucket) {
        bucketDeadline = input.f64();
        if (!Number.isSafeInteger(bucketDeadline) || engine.buckets.has(bucketDeadline)) throw corrupt('bad deadline');
      } else if (tag === tagWindow) {
        if (Number.isNaN(bucketDeadline)) throw corrupt('window outside a deadline');
        const keyRef = input.varuint();
        let key: number;
        if (keyRef === 0) {
          const name = input.string(maxStringBytes);
          const zone = input.varuint();
          if (zone >= engine.zones.length || engine.keyIndex.has(name)) throw corrupt(`bad key "${name}"`);
          key = engine.createKey(name, zone);
          keysByOrdinal.push(key);
        } else {
          if (keyRef > keysByOrdinal.length) throw corrupt('unknown key reference');
          key = keysByOrdinal[keyRef - 1];
        }
        const slot = engine.readWindow(input, key, bucketDeadline, restoredPending);
        if (slot === none) throw corrupt('bad window');
        windowsRead++;
      } else if (tag === tagRetraction) {
        engine.retractions.push(engine.readRetraction(input));
      } else if (tag === tagEnd) {
        const windowCount = input.varuint();
        const keyCount = input.varuint();
        const checksum = input.checksum();
        if (input.u32() !== checksum) throw corrupt('checksum mismatch');
        if (windowCount !== windowsRead || keyCount !== keysByOrdinal.length) throw corrupt('counts do not match');
        if (!input.atEnd()) throw corrupt('data after the end');
        break;
      } else {
        throw corrupt(`unknown entry ${tag}`);
      }
    }
    // pending holds [rank, slot] pairs: restore the order it had.
    const order: number[] = [];
    for (let i = 0; i < restoredPending.length; i += 2) order.push(i);
    order.sort((a, b) => restoredPending[a] - restoredPending[b]);
    for (const i of order) engine.pending.add(restoredPending[i + 1]);
    if (engine.pending.size !== order.length) throw corrupt('pending windows repeat');
    return engine;
  }

  // ---- adding -------------------------------------------------------------------------------

  private addAligned(input: WindowInput): AddOutcome {
    const key = input.key;
    const t = input.eventTimeMs;
    let k = this.keyIndex.get(key);
    const zoneId = k === undefined ? this.zoneForKey(key) : this.keyZone[k];
    const zone = this.zones[zoneId];
    let pane = zone.current;
    if (!(t >= pane.from && t < pane.to)) pane = zone.paneFor(t);
    const starts = pane.starts;
    const ends = pane.ends;
    const lateness = this.latenessMs;
    const watermark = this.watermark;
    // Windows ascend by (start, end): the last one expires last.
    let i = pane.count - 1;
    if (ends[i] + lateness <= watermark) return this.late();
    if (k === undefined) k = this.createKey(key, zoneId);
    // The key's windows descend by (start, end): one merge walk places all the record's windows.
    let previous = none;
    let current = this.keyFirstWindow[k];
    for (; i >= 0; i--) {
      const start = starts[i];
      const end = ends[i];
      if (end + lateness <= watermark) break;
      while (current !== none && (this.windowStart[current] > start || (this.windowStart[current] === start && this.windowEnd[current] > end))) {
        previous = current;
        current = this.windowNextOfKey[current];
      }
      let slot = current;
      if (slot === none || this.windowStart[slot] !== start || this.windowEnd[slot] !== end) {
        slot = this.newWindow(k, start, end, previous, current);
      }
      this.accumulate(slot, input);
      if (end <= this.closedWatermark) this.pending.add(slot);
      previous = slot;
      current = this.windowNextOfKey[slot];
    }
    return 'applied';
  }

  /**
   * Sessions: a record is late when t + allowedLateness <= watermark. Measured on the record rather
   * than on a session's end, so that purging can never split a session: every session an accepted
   * record can touch ends at or after t > watermark - lateness, hence is still held.
   */
  private addToSession(input: WindowInput): AddOutcome {
    const t = input.eventTimeMs;
    if (t + this.latenessMs <= this.watermark) return this.late();
    let k = this.keyIndex.get(input.key);
    if (k === undefined) k = this.createKey(input.key, 0);
    const end = t + this.gapMs;
    // The key's sessions ascend by start and neither overlap nor touch.
    let previous = none;
    let current = this.keyFirstWindow[k];
    while (current !== none && this.windowEnd[current] < t) {
      previous = current;
      current = this.windowNextOfKey[current];
    }
    if (current === none || this.windowStart[current] > end) {
      const slot = this.newWindow(k, t, end, previous, current);
      this.accumulate(slot, input);
      if (end <= this.closedWatermark) this.pending.add(slot);
      return 'applied';
    }
    const target = current;
    const oldStart = this.windowStart[target];
    const oldEnd = this.windowEnd[target];
    let next = this.windowNextOfKey[target];
    const merges = next !== none && this.windowStart[next] <= end;
    const newStart = Math.min(oldStart, t);
    let newEnd = Math.max(oldEnd, end);
    const boundsChange = merges || newStart !== oldStart || newEnd !== oldEnd;
    if (boundsChange && this.windowRevision[target] > 0) this.retract(target);
    while (next !== none && this.windowStart[next] <= end) {
      const absorbed = next;
      next = this.windowNextOfKey[absorbed];
      if (this.windowRevision[absorbed] > 0) this.retract(absorbed);
      if (this.windowEnd[absorbed] > newEnd) newEnd = this.windowEnd[absorbed];
      this.absorb(target, absorbed);
      this.removeSession(absorbed);
    }
    if (boundsChange) {
      this.windowRevision[target] = 0; // a new session as far as readers are concerned
      this.pending.delete(target);
      this.windowStart[target] = newStart;
      this.windowEnd[target] = newEnd;
    }
    this.accumulate(target, input);
    const closed = newEnd <= this.closedWatermark;
    if (closed) this.pending.add(target);
    // Buckets may hold a session early (it is re-filed when reached), never late.
    const due = closed ? newEnd + this.latenessMs : newEnd;
    if (this.windowDeadline[target] > due) {
      this.removeFromBucket(target);
      this.appendToBucket(target, due);
    }
    return 'applied';
  }

  private late(): AddOutcome {
    this.lateCount++;
    return 'late';
  }

  private accumulate(slot: number, input: WindowInput): void {
    const t = input.eventTimeMs;
    const value = input.value;
    const subKey = input.subKey;
    this.windowCount[slot]++;
    this.windowSum[slot] += value;
    if (value < this.windowMin[slot]) this.windowMin[slot] = value;
    if (value > this.windowMax[slot]) this.windowMax[slot] = value;
    if (t > this.windowMaxEventTime[slot]) this.windowMaxEventTime[slot] = t;
    if (subKey !== undefined) this.subKeyCounts[slot * this.subKeyCount + subKey]++;
  }

  /** Folds session `from` into `into`. */
  private absorb(into: number, from: number): void {
    this.windowCount[into] += this.windowCount[from];
    this.windowSum[into] += this.windowSum[from];
    if (this.windowMin[from] < this.windowMin[into]) this.windowMin[into] = this.windowMin[from];
    if (this.windowMax[from] > this.windowMax[into]) this.windowMax[into] = this.windowMax[from];
    if (this.windowMaxEventTime[from] > this.windowMaxEventTime[into]) this.windowMaxEventTime[into] = this.windowMaxEventTime[from];
    const n = this.subKeyCount;
    for (let i = 0; i < n; i++) this.subKeyCounts[into * n + i] += this.subKeyCounts[from * n + i];
  }

  private retract(slot: number): void {
    this.retractions.push(this.resultOf(slot, this.windowRevision[slot] + 1, true));
  }

  // ---- windows, keys, buckets ----------------------------------------------------------------

  /** A window with no records yet, linked into its key's list between `previous` and `next`, filed by its deadline. */
  private newWindow(key: number, start: number, end: number, previous: number, next: number): number {
    const slot = this.allocateWindow(key, start, end, previous, next);
    this.appendToBucket(slot, end > this.closedWatermark ? end : end + this.latenessMs);
    return slot;
  }

  private allocateWindow(key: number, start: number, end: number, previous: number, next: number): number {
    let slot = this.freeSlot;
    if (slot !== none) {
      this.freeSlot = this.windowNextInBucket[slot];
    } else {
      if (this.slotHighWater === this.capacity) this.growWindows();
      slot = this.slotHighWater++;
    }
    this.liveWindows++;
    this.windowStart[slot] = start;
    this.windowEnd[slot] = end;
    this.windowCount[slot] = 0;
    this.windowSum[slot] = 0;
    this.windowMin[slot] = Number.POSITIVE_INFINITY;
    this.windowMax[slot] = Number.NEGATIVE_INFINITY;
    this.windowMaxEventTime[slot] = Number.NEGATIVE_INFINITY;
    this.windowRevision[slot] = 0;
    this.windowKey[slot] = key;
    for (let i = slot * this.subKeyCount, end = i + this.subKeyCount; i < end; i++) this.subKeyCounts[i] = 0; // (fill() costs more for a few counters)
    this.windowPreviousOfKey[slot] = previous;
    this.windowNextOfKey[slot] = next;
    if (previous === none) this.keyFirstWindow[key] = slot;
    else this.windowNextOfKey[previous] = slot;
    if (next !== none) this.windowPreviousOfKey[next] = slot;
    return slot;
  }

  private appendToBucket(slot: number, deadline: number): void {
    let bucket = this.lastBucket;
    if (bucket === undefined || bucket.deadline !== deadline) {
      bucket = this.buckets.get(deadline);
      if (bucket === undefined) {
        bucket = new Bucket(deadline);
        this.buckets.set(deadline, bucket);
        this.deadlines.push(deadline);
      }
      this.lastBucket = bucket;
    }
    this.windowNextInBucket[slot] = none;
    if (this.kind === session) {
      this.windowPreviousInBucket[slot] = bucket.tail;
      this.windowDeadline[slot] = deadline;
    }
    if (bucket.tail === none) bucket.head = slot;
    else this.windowNextInBucket[bucket.tail] = slot;
    bucket.tail = slot;
  }

  /** Sessions only. An emptied bucket stays until its deadline comes (then it is simply dropped). */
  private removeFromBucket(slot: number): void {
    const bucket = this.buckets.get(this.windowDeadline[slot]) as Bucket;
    const previous = this.windowPreviousInBucket[slot];
    const next = this.windowNextInBucket[slot];
    if (previous === none) bucket.head = next;
    else this.windowNextInBucket[previous] = next;
    if (next === none) bucket.tail = previous;
    else this.windowPreviousInBucket[next] = previous;
  }

  /** A session merged into another: gone without a trace (its retraction, if due, is already queued). */
  private removeSession(slot: number): void {
    this.removeFromBucket(slot);
    this.pending.delete(slot);
    this.purge(slot);
  }

  /** Drops a window from its key's list and frees the slot (the caller took it out of its bucket). */
  private purge(slot: number): void {
    const key = this.windowKey[slot];
    const previous = this.windowPreviousOfKey[slot];
    const next = this.windowNextOfKey[slot];
    if (previous === none) this.keyFirstWindow[key] = next;
    else this.windowNextOfKey[previous] = next;
    if (next !== none) this.windowPreviousOfKey[next] = previous;
    if (this.keyFirstWindow[key] === none) this.removeKey(key);
    this.windowNextInBucket[slot] = this.freeSlot;
    this.freeSlot = slot;
    this.liveWindows--;
  }

  private createKey(name: string, zone: number): number {
    let key: number;
    if (this.freeKeyCount > 0) {
      key = this.freeKeys[--this.freeKeyCount];
    } else {
      if (this.keyHighWater === this.keyFirstWindow.length) this.growKeys();
      key = this.keyHighWater++;
    }
    this.keyNames[key] = name;
    this.keyFirstWindow[key] = none;
    this.keyZone[key] = zone;
    this.keyIndex.set(name, key);
    return key;
  }

  private removeKey(key: number): void {
    this.keyIndex.delete(this.keyNames[key]);
    this.keyNames[key] = '';
    this.freeKeys[this.freeKeyCount++] = key;
  }

  private zoneForKey(key: string): number {
    if (this.timeZoneOfKey === undefined) return 0;
    const name = this.timeZoneOfKey(key);
    if (name === this.lastZoneName) return this.lastZoneId;
    if (typeof name !== 'string') throw new Error(`timeZoneOfKey("${key}") did not return a zone name`);
    let id = this.zoneIds.get(name);
    if (id === undefined) id = this.registerZone(name);
    this.lastZoneName = name;
    this.lastZoneId = id;
    return id;
  }

  private registerZone(name: string): number {
    const clock = zoneClock(name);
    if (this.zones.length > 0xffff) throw new Error('More than 65,536 time zones');
    const id = this.zones.length;
    this.zones.push(new ZoneWindows(name, clock, this.layout ?? { sizeMs: 1, slideMs: 1, windowsPerRecord: 1, calendar: false }));
    this.zoneIds.set(name, id);
    return id;
  }

  private resultOf(slot: number, revision: number, retracted: boolean): WindowResult {
    const key = this.windowKey[slot];
    const result: WindowResult = {
      key: this.keyNames[key],
      startMs: this.windowStart[slot],
      endMs: this.windowEnd[slot],
      timeZone: this.zones[this.keyZone[key]].name,
      count: this.windowCount[slot],
      sum: this.windowSum[slot],
      min: this.windowMin[slot],
      max: this.windowMax[slot],
      maxEventTimeMs: this.windowMaxEventTime[slot],
      revision,
    };
    const n = this.subKeyCount;
    if (n > 0) {
      const counts = new Array<number>(n);
      for (let i = 0; i < n; i++) counts[i] = this.subKeyCounts[slot * n + i];
      result.countsBySubKey = counts;
    }
    if (retracted) result.retracted = true;
    return result;
  }

  private growWindows(): void {
    const capacity = this.capacity * 2;
    const grow64 = (old: Float64Array): Float64Array => {
      const grown = new Float64Array(old.length === 0 ? 0 : capacity);
      grown.set(old);
      return grown;
    };
    const grow32 = <T extends Int32Array | Uint32Array>(old: T, make: (n: number) => T, perSlot = 1): T => {
      const grown = make(old.length === 0 ? 0 : capacity * perSlot);
      grown.set(old);
      return grown;
    };
    const int32 = (n: number) => new Int32Array(n);
    const uint32 = (n: number) => new Uint32Array(n);
    this.windowStart = grow64(this.windowStart);
    this.windowEnd = grow64(this.windowEnd);
    this.windowCount = grow64(this.windowCount);
    this.windowSum = grow64(this.windowSum);
    this.windowMin = grow64(this.windowMin);
    this.windowMax = grow64(this.windowMax);
    this.windowMaxEventTime = grow64(this.windowMaxEventTime);
    this.windowDeadline = grow64(this.windowDeadline);
    this.windowRevision = grow32(this.windowRevision, uint32);
    this.windowKey = grow32(this.windowKey, int32);
    this.windowNextOfKey = grow32(this.windowNextOfKey, int32);
    this.windowPreviousOfKey = grow32(this.windowPreviousOfKey, int32);
    this.windowNextInBucket = grow32(this.windowNextInBucket, int32);
    this.windowPreviousInBucket = grow32(this.windowPreviousInBucket, int32);
    this.subKeyCounts = grow32(this.subKeyCounts, uint32, this.subKeyCount);
    this.capacity = capacity;
  }

  private growKeys(): void {
    const capacity = this.keyFirstWindow.length * 2;
    const first = new Int32Array(capacity);
    first.set(this.keyFirstWindow);
    this.keyFirstWindow = first;
    const zones = new Uint16Array(capacity);
    zones.set(this.keyZone);
    this.keyZone = zones;
    const free = new Int32Array(capacity);
    free.set(this.freeKeys);
    this.freeKeys = free;
  }

  private busy(): Error {
    return new Error('WindowEngine is being snapshotted: finish (or return) the snapshotChunks generator before changing it');
  }

  // ---- snapshot encoding ----------------------------------------------------------------------

  private writeHeader(out: ChunkWriter): void {
    for (const byte of snapshotMagic) out.u8(byte);
    out.u8(snapshotVersion);
    this.writeOptions(out);
    out.f64(this.watermark);
    out.f64(this.maxEventTime);
    out.f64(this.lastActivityLogTime);
    out.f64(this.closedWatermark);
    out.f64(this.lateCount);
    out.varuint(this.zones.length);
    for (const zone of this.zones) out.string(zone.name);
  }

  private writeOptions(out: ChunkWriter): void {
    out.u8(this.kind);
    out.f64(this.layout?.sizeMs ?? 0);
    out.f64(this.layout?.slideMs ?? 0);
    out.f64(this.gapMs);
    out.string(this.defaultZone);
    out.f64(this.outOfOrdernessMs);
    out.f64(this.latenessMs);
    out.f64(this.idleTimeoutMs);
    out.varuint(this.subKeyCount);
  }

  private readHeader(input: ChunkReader): void {
    for (const byte of snapshotMagic) {
      if (input.u8() !== byte) throw new SnapshotError('Not a window engine snapshot (wrong magic bytes)');
    }
    const version = input.u8();
    if (version !== snapshotVersion) {
      throw new SnapshotError(`Window engine snapshot format version ${version} is not supported (this engine reads version ${snapshotVersion})`);
    }
    const expected = new ChunkWriter(Number.MAX_SAFE_INTEGER);
    this.writeOptions(expected);
    const actual = new ChunkWriter(Number.MAX_SAFE_INTEGER);
    actual.u8(input.u8());
    actual.f64(input.f64());
    actual.f64(input.f64());
    actual.f64(input.f64());
    actual.string(input.string(maxStringBytes));
    actual.f64(input.f64());
    actual.f64(input.f64());
    actual.f64(input.f64());
    actual.varuint(input.varuint());
    expected.finish();
    actual.finish();
    const [a] = expected.ready;
    const [b] = actual.ready;
    if (a.length !== b.length || a.some((byte, i) => byte !== b[i])) {
      throw new SnapshotError('The snapshot was taken with other window options (window spec, out-of-orderness, lateness, idle timeout or sub-key count)');
    }
    this.watermark = input.f64();
    this.maxEventTime = input.f64();
    this.lastActivityLogTime = input.f64();
    this.closedWatermark = input.f64();
    this.lateCount = input.f64();
    const zoneCount = input.varuint();
    for (let i = 0; i < zoneCount; i++) {
      const name = input.string(maxStringBytes);
      if (i < this.zones.length) {
        if (this.zones[i].name !== name) throw new SnapshotError('The snapshot was taken with another default time zone');
      } else {
        if (this.zoneIds.has(name)) throw corrupt(`zone "${name}" repeats`);
        try {
          this.registerZone(name);
        } catch (error) {
          throw corrupt((error as Error).message);
        }
      }
    }
    if (!Number.isSafeInteger(this.watermark) || !Number.isSafeInteger(this.closedWatermark) || this.closedWatermark > this.watermark) {
      throw corrupt('bad watermark');
    }
  }

  private writeWindow(out: ChunkWriter, slot: number, pendingRank: number): void {
    const start = this.windowStart[slot];
    const sum = this.windowSum[slot];
    const min = this.windowMin[slot];
    const max = this.windowMax[slot];
    const flags =
      (isCompactInteger(start) ? startIsInteger : 0) |
      (isCompactInteger(sum) ? sumIsInteger : 0) |
      (isCompactInteger(min) ? minIsInteger : 0) |
      (isCompactInteger(max) ? maxIsInteger : 0);
    out.u8(flags);
    if (flags & startIsInteger) out.zigzag(start);
    else out.f64(start);
    out.varuint(this.windowEnd[slot] - start);
    out.varuint(this.windowCount[slot]);
    if (flags & sumIsInteger) out.zigzag(sum);
    else out.f64(sum);
    if (flags & minIsInteger) out.zigzag(min);
    else out.f64(min);
    if (flags & maxIsInteger) out.zigzag(max);
    else out.f64(max);
    out.varuint(this.windowMaxEventTime[slot] - start);
    out.varuint(this.windowRevision[slot]);
    out.varuint(pendingRank);
    const n = this.subKeyCount;
    for (let i = 0; i < n; i++) out.varuint(this.subKeyCounts[slot * n + i]);
  }

  /** Returns the new slot; pending windows add [rank, slot] to `pending`. */
  private readWindow(input: ChunkReader, key: number, deadline: number, pending: number[]): number {
    const flags = input.u8();
    if (flags > 15) return none;
    const start = flags & startIsInteger ? input.zigzag() : input.f64();
    const end = start + input.varuint();
    const count = input.varuint();
    const sum = flags & sumIsInteger ? input.zigzag() : input.f64();
    const min = flags & minIsInteger ? input.zigzag() : input.f64();
    const max = flags & maxIsInteger ? input.zigzag() : input.f64();
    const maxEventTime = start + input.varuint();
    const revision = input.varuint();
    const pendingRank = input.varuint();
    if (!Number.isSafeInteger(start) || end <= start || maxEventTime >= end || count < 1 || revision > 0xffffffff) return none;
    // Insert into the key's list at its place (descending for aligned windows, ascending for sessions).
    let previous = none;
    let current = this.keyFirstWindow[key];
    const ascending = this.kind === session;
    while (
      current !== none &&
      (ascending
        ? this.windowStart[current] < start
        : this.windowStart[current] > start || (this.windowStart[current] === start && this.windowEnd[current] > end))
    ) {
      previous = current;
      current = this.windowNextOfKey[current];
    }
    if (current !== none && this.windowStart[current] === start && (ascending || this.windowEnd[current] === end)) return none;
    const slot = this.allocateWindow(key, start, end, previous, current);
    this.appendToBucket(slot, deadline); // the snapshot's bucket, in the snapshot's order
    this.windowCount[slot] = count;
    this.windowSum[slot] = sum;
    this.windowMin[slot] = min;
    this.windowMax[slot] = max;
    this.windowMaxEventTime[slot] = maxEventTime;
    this.windowRevision[slot] = revision;
    const n = this.subKeyCount;
    for (let i = 0; i < n; i++) {
      const c = input.varuint();
      if (c > 0xffffffff) return none;
      this.subKeyCounts[slot * n + i] = c;
    }
    if (pendingRank > 0) pending.push(pendingRank, slot);
    return slot;
  }

  private writeRetraction(out: ChunkWriter, result: WindowResult): void {
    out.string(result.key);
    out.f64(result.startMs);
    out.f64(result.endMs);
    out.f64(result.count);
    out.f64(result.sum);
    out.f64(result.min);
    out.f64(result.max);
    out.f64(result.maxEventTimeMs);
    out.varuint(result.revision);
    const counts = result.countsBySubKey ?? [];
    for (let i = 0; i < this.subKeyCount; i++) out.varuint(counts[i]);
  }

  private readRetraction(input: ChunkReader): WindowResult {
    const result: WindowResult = {
      key: input.string(maxStringBytes),
      startMs: input.f64(),
      endMs: input.f64(),
      timeZone: 'UTC',
      count: input.f64(),
      sum: input.f64(),
      min: input.f64(),
      max: input.f64(),
      maxEventTimeMs: input.f64(),
      revision: input.varuint(),
    };
    if (this.subKeyCount > 0) {
      const counts = new Array<number>(this.subKeyCount);
      for (let i = 0; i < this.subKeyCount; i++) counts[i] = input.varuint();
      result.countsBySubKey = counts;
    }
    result.retracted = true;
    if (this.kind !== session) throw corrupt('retraction in a snapshot of aligned windows');
    return result;
  }
}
