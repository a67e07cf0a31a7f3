import { BackgroundSnapshots } from './background-snapshots';
import type { SnapshotFrame } from './snapshot-store';

/** A promise and its resolvers, to hold an output unacknowledged for as long as a test needs. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const text = async (frames: Iterable<SnapshotFrame> | AsyncIterable<SnapshotFrame>) => {
  const texts: string[] = [];
  for await (const frame of frames) texts.push(`${frame.kind}:${Buffer.from(frame.data).toString()}`);
  return texts;
};

describe('BackgroundSnapshots', () => {
  it('copies the state when taken and saves it only after the outputs up to then are acknowledged', async () => {
    const state = { value: 'v1' };
    const saved: string[][] = [];
    const snapshots = new BackgroundSnapshots({ save: async (frames) => (saved.push(await text(frames)), 1), failed: () => undefined });
    const frames = function* () {
      yield { kind: 'state', data: Buffer.from(state.value) };
    };
    const output = deferred<string>();
    const taken = snapshots.take(frames(), [output.promise]);
    state.value = 'v2'; // the processor goes on: the snapshot keeps what it copied
    await new Promise((resolve) => setImmediate(resolve));
    expect(saved).toEqual([]);
    expect(snapshots.busy).toBe(true);
    output.resolve('acknowledged');
    await taken;
    expect(saved).toEqual([['state:v1']]);
    expect(snapshots.busy).toBe(false);
  });

  it('one save at a time: taking again while one runs returns the running one', async () => {
    const gate = deferred();
    let saves = 0;
    const snapshots = new BackgroundSnapshots({ save: async () => (saves++, await gate.promise, 1), failed: () => undefined });
    const first = snapshots.take([], []);
    const second = snapshots.take([], []);
    expect(second).toBe(first);
    gate.resolve();
    await first;
    expect(saves).toBe(1);
  });

  it('saves nothing when an output it waited for failed, and reports the failure', async () => {
    const failures: unknown[] = [];
    let saves = 0;
    const snapshots = new BackgroundSnapshots({ save: async () => (saves++, 1), failed: (error) => failures.push(error) });
    const output = deferred();
    const taken = snapshots.take([], [output.promise]);
    output.reject(new Error('publish timed out'));
    await taken;
    expect(saves).toBe(0);
    expect(failures).toHaveLength(1);
    expect(snapshots.failed).toEqual(new Error('publish timed out'));
  });

  it('takeLive: reads the frames only once the outputs are acknowledged, in slices that let the processor run between them', async () => {
    const saved: string[][] = [];
    const snapshots = new BackgroundSnapshots({ save: async (frames) => (saved.push(await text(frames)), 1), failed: () => undefined });
    const read: number[] = [];
    let turnsOfTheProcessor = 0;
    const busyFor = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    const frames = function* () {
      for (let index = 0; index < 4; index++) {
        read.push(index);
        busyFor(3); // two frames exceed a 5 ms slice
        yield { kind: 'state', data: Buffer.from(String(index)) };
      }
    };
    const output = deferred();
    const taken = snapshots.takeLive(frames(), [output.promise], 5);
    await new Promise((resolve) => setImmediate(resolve));
    expect(read).toEqual([]);
    const processor = setInterval(() => turnsOfTheProcessor++, 0);
    output.resolve();
    await taken;
    clearInterval(processor);
    expect(saved).toEqual([['state:0', 'state:1', 'state:2', 'state:3']]);
    // 12 ms of encoding in slices of 5 ms: the processor had turns in between.
    expect(turnsOfTheProcessor).toBeGreaterThanOrEqual(1);
  });

  it('takeLive: a frame that fails to encode fails the save and is reported', async () => {
    const failures: unknown[] = [];
    const snapshots = new BackgroundSnapshots({ save: async (frames) => (await text(frames), 1), failed: (error) => failures.push(error) });
    const frames = function* () {
      yield { kind: 'state', data: Buffer.from('a') };
      throw new Error('superseded');
    };
    await snapshots.takeLive(frames(), []);
    expect(failures).toEqual([new Error('superseded')]);
    expect(snapshots.busy).toBe(false);
  });
});
