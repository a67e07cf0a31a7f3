import type { SnapshotFrame } from './snapshot-store';

/**
 * The promise itself, with a handler attached: an output publish that fails before the processor next
 * waits for its outputs (a drain, a snapshot) must not end the process as an unhandled rejection; the
 * processor still sees the failure when it waits, and restarts from its snapshot.
 */
export function observed<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

export interface BackgroundSnapshotsOptions<K extends string> {
  /** Stores the frames (the snapshot store's `save` under the processor's name); returns the bytes written. */
  save(frames: Iterable<SnapshotFrame<K>> | AsyncIterable<SnapshotFrame<K>>): Promise<number>;
  saved?(bytes: number, durationMs: number): void;
  /** A save (or an output it waited for) failed: the processor must restart from its previous snapshot. */
  failed(error: unknown): void;
}

/**
 * Snapshots of a processor whose output is a function of its input log (the windower's partitions,
 * billing's shards: ADR 0006, ADR 0013), taken without stopping it. `take` copies the state at
 * once (the frames are encoded synchronously, at the position of the last record applied) and
 * saves the copy once every output published up to that record is acknowledged by the broker, so a
 * stored snapshot never claims outputs that could still be lost. Meanwhile the processor goes on
 * applying records: a snapshot costs its encoding, not a pause of the processor behind a drain of
 * its outputs and the object store's round trips (those pauses delayed alerts by seconds). One save
 * at a time; the next waits for the interval to pass again.
 */
export class BackgroundSnapshots<K extends string = string> {
  private saving?: Promise<void>;
  private failure: unknown;

  constructor(private readonly options: BackgroundSnapshotsOptions<K>) {}

  /** A save is in progress. */
  get busy(): boolean {
    return this.saving !== undefined;
  }

  /** The first failure of a save, if any (the processor should restart from its previous snapshot). */
  get failed(): unknown {
    return this.failure;
  }

  /**
   * Copies `frames` now and saves them after `outputs` (every output of the records up to the
   * snapshot's position that may still be unacknowledged) settle. Returns when the save is done;
   * the caller may also leave it running. A save in progress is returned instead of a new one.
   */
  take(frames: Iterable<SnapshotFrame<K>>, outputs: ReadonlyArray<Promise<unknown>>): Promise<void> {
    if (this.saving) return this.saving;
    const begun = performance.now();
    const copy = Array.from(frames);
    return this.track(Promise.all([...outputs]).then(() => this.options.save(copy)), begun);
  }

  /**
   * Like `take`, for a state too large to encode at once without stalling its processor (billing's
   * shards: 100,000 accounts take about 250 ms): `frames` were begun at the snapshot's position and
   * stay consistent by themselves while the processor goes on (copy on write), and are encoded a
   * slice of at most `sliceMs` at a time, once the outputs are acknowledged, as they are written.
   */
  takeLive(frames: Iterable<SnapshotFrame<K>>, outputs: ReadonlyArray<Promise<unknown>>, sliceMs = DEFAULT_SLICE_MS): Promise<void> {
    if (this.saving) return this.saving;
    return this.track(Promise.all([...outputs]).then(() => this.options.save(inSlices(frames, sliceMs))));
  }

  private track(saved: Promise<number>, begun = performance.now()): Promise<void> {
    const saving = saved
      .then((bytes) => this.options.saved?.(bytes, performance.now() - begun))
      .catch((error: unknown) => {
        this.failure ??= error;
        this.options.failed(error);
      })
      .finally(() => {
        this.saving = undefined;
      });
    this.saving = saving;
    return saving;
  }

  /** Waits for the save in progress, if any. */
  async settled(): Promise<void> {
    await this.saving;
  }
}

const DEFAULT_SLICE_MS = 5;

/** The frames, handing the thread back whenever encoding them took `sliceMs` since the last time. */
async function* inSlices<F>(frames: Iterable<F>, sliceMs: number): AsyncGenerator<F> {
  const slicer = new Slicer(sliceMs);
  for (const frame of frames) {
    yield frame;
    const pause = slicer.pauseIfDue();
    if (pause) await pause;
  }
}

/**
 * Work on a thread that also serves latency-sensitive input (billing applies its shards on the
 * thread that encodes its snapshots and read model): hands the thread back (setImmediate) once
 * the work has run for `sliceMs` since the last time.
 */
export class Slicer {
  private since = performance.now();

  constructor(private readonly sliceMs: number) {}

  /** A pause to await when the slice is used up; undefined (nothing to await, no promise made) otherwise. */
  pauseIfDue(): Promise<void> | undefined {
    if (performance.now() - this.since < this.sliceMs) return undefined;
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        this.since = performance.now();
        resolve();
      }),
    );
  }
}
