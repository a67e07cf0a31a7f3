import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AcknowledgedPrefix,
  CheckpointWriter,
  defaultCheckpointPath,
  loadCheckpoint,
  planResume,
  readInputIdentity,
  writeFileAtomic,
  type Checkpoint,
} from './checkpoint';
import { CheckpointError } from './errors';
import { makeTempDir } from './test-support';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await makeTempDir()));
afterEach(() => cleanup());

const point = (lines: number) => ({ linesAcknowledged: lines, bytesAcknowledged: lines * 10 });

describe('AcknowledgedPrefix', () => {
  it('advances only over the contiguous run of completed ranges', () => {
    const prefix = new AcknowledgedPrefix();
    const first = prefix.register(point(500));
    const second = prefix.register(point(1000));
    const third = prefix.register(point(1500));
    expect(prefix.complete(third)).toBeUndefined();
    expect(prefix.complete(second)).toBeUndefined();
    expect(prefix.current).toEqual(point(0));
    expect(prefix.complete(first)).toEqual(point(1500));
    expect(prefix.outstanding).toBe(0);
  });

  it('starts from a resume point and advances step by step in order', () => {
    const prefix = new AcknowledgedPrefix(point(200));
    const a = prefix.register(point(300));
    const b = prefix.register(point(300)); // a range of only blank lines is allowed to be empty
    const c = prefix.register(point(400));
    expect(prefix.complete(a)).toEqual(point(300));
    expect(prefix.complete(c)).toBeUndefined();
    expect(prefix.complete(b)).toEqual(point(400));
  });

  it('refuses ranges out of file order and unknown ids', () => {
    const prefix = new AcknowledgedPrefix(point(10));
    expect(() => prefix.register(point(5))).toThrow(/file order/);
    const id = prefix.register(point(20));
    prefix.complete(id);
    expect(() => prefix.complete(id)).toThrow(/unknown/);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the content and leaves no temporary file behind', async () => {
    const path = join(dir, 'state.json');
    await writeFile(path, 'old');
    await writeFileAtomic(path, 'new');
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('never exposes a partly written file to concurrent readers', async () => {
    const path = join(dir, 'state.json');
    const big = (fill: string) => JSON.stringify({ fill: fill.repeat(200_000) });
    await writeFileAtomic(path, big('a'));
    const writes = ['b', 'c', 'd', 'e'].map((fill) => writeFileAtomic(path, big(fill)));
    const reads: string[] = [];
    for (let i = 0; i < 20; i += 1) reads.push(await readFile(path, 'utf8'));
    await Promise.all(writes);
    for (const text of reads) expect(() => JSON.parse(text)).not.toThrow();
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('fails without touching the target when the directory does not exist', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'state.json'), 'x')).rejects.toThrow();
  });
});

describe('CheckpointWriter', () => {
  it('writes the latest recorded point and can be read back', async () => {
    const input = join(dir, 'tx.ndjson');
    await writeFile(input, 'line\n');
    const identity = await readInputIdentity(input);
    const path = defaultCheckpointPath(input);
    const writer = new CheckpointWriter(path, identity, 'ndjson');
    for (let lines = 1; lines <= 50; lines += 1) writer.record(point(lines));
    writer.record(point(51), true);
    await writer.flush();
    const saved = await loadCheckpoint(path);
    expect(saved).toMatchObject({ version: 1, input: identity, format: 'ndjson', ...point(51), complete: true });
    expect(await readdir(dir)).toEqual(['tx.ndjson', 'tx.ndjson.checkpoint.json']);
  });

  it('reports a failed write on flush', async () => {
    const input = join(dir, 'tx.ndjson');
    await writeFile(input, 'line\n');
    const writer = new CheckpointWriter(join(dir, 'no-such-dir', 'cp.json'), await readInputIdentity(input), 'ndjson');
    writer.record(point(1));
    await expect(writer.flush()).rejects.toThrow(CheckpointError);
  });
});

describe('loadCheckpoint', () => {
  it('returns undefined when there is none', async () => {
    expect(await loadCheckpoint(join(dir, 'none.json'))).toBeUndefined();
  });

  it.each(['{not json', '{"hello": 1}'])('refuses a damaged checkpoint %s', async (content) => {
    const path = join(dir, 'cp.json');
    await writeFile(path, content);
    await expect(loadCheckpoint(path)).rejects.toThrow(CheckpointError);
  });
});

describe('planResume', () => {
  const options = { restart: false, checkpointPath: 'cp.json' };

  async function setUp(): Promise<{ input: string; checkpoint: Checkpoint }> {
    const input = join(dir, 'tx.ndjson');
    await writeFile(input, 'a\nb\nc\n');
    const checkpoint: Checkpoint = {
      version: 1,
      input: await readInputIdentity(input),
      format: 'ndjson',
      linesAcknowledged: 2,
      bytesAcknowledged: 4,
      complete: false,
      updatedAt: new Date().toISOString(),
    };
    return { input, checkpoint };
  }

  it('starts from the top without a checkpoint', async () => {
    const { input } = await setUp();
    expect(planResume(undefined, await readInputIdentity(input), 'ndjson', options)).toEqual(point(0));
  });

  it('resumes after the acknowledged prefix of the same file', async () => {
    const { input, checkpoint } = await setUp();
    expect(planResume(checkpoint, await readInputIdentity(input), 'ndjson', options)).toEqual({
      linesAcknowledged: 2,
      bytesAcknowledged: 4,
    });
  });

  it.each([
    ['appended to', async (input: string) => writeFile(input, 'a\nb\nc\nd\n'), /size 6 -> 8 bytes/],
    ['rewritten with the same size', async (input: string) => writeFile(input, 'x\ny\nz\n'), /first KiB differs/],
    ['touched', async (input: string) => utimes(input, new Date(), new Date(Date.now() + 5_000)), /modified/],
  ])('refuses to resume when the input was %s', async (_what, change, reason) => {
    const { input, checkpoint } = await setUp();
    await change(input);
    const current = await readInputIdentity(input);
    expect(() => planResume(checkpoint, current, 'ndjson', options)).toThrow(CheckpointError);
    expect(() => planResume(checkpoint, current, 'ndjson', options)).toThrow(reason);
    expect(() => planResume(checkpoint, current, 'ndjson', options)).toThrow(/--restart/);
    expect(planResume(checkpoint, current, 'ndjson', { ...options, restart: true })).toEqual(point(0));
  });

  it('refuses a checkpoint written for another file or another format', async () => {
    const { input, checkpoint } = await setUp();
    const current = await readInputIdentity(input);
    expect(() => planResume({ ...checkpoint, input: { ...checkpoint.input, path: '/elsewhere/tx.ndjson' } }, current, 'ndjson', options)).toThrow(
      /written for \/elsewhere\/tx.ndjson/,
    );
    expect(() => planResume(checkpoint, current, 'csv', options)).toThrow(/as ndjson, not csv/);
  });
});
