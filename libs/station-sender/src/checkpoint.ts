import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { CheckpointError } from './errors';
import { inputFormats, type InputFormat } from './transaction-file';

/** What identifies the input file a checkpoint belongs to. Any difference means "changed". */
export interface InputIdentity {
  /** Absolute path. */
  path: string;
  size: number;
  mtimeMs: number;
  /** sha256 (hex) of the first KiB. */
  headSha256: string;
}

export interface Checkpoint {
  version: 1;
  input: InputIdentity;
  format: InputFormat;
  /** Lines 1..linesAcknowledged all have a final outcome (or needed none: blank, header, unparseable). */
  linesAcknowledged: number;
  /** Byte offset just past line `linesAcknowledged`: where a resumed run starts reading. */
  bytesAcknowledged: number;
  /** True once the whole file was acknowledged. */
  complete: boolean;
  updatedAt: string;
}

/** Where we resume reading: the first line not yet acknowledged. */
export interface ResumePoint {
  linesAcknowledged: number;
  bytesAcknowledged: number;
}

export const HEAD_BYTES = 1024;

export function defaultCheckpointPath(inputPath: string): string {
  return `${inputPath}.checkpoint.json`;
}

export async function readInputIdentity(inputPath: string): Promise<InputIdentity> {
  const path = resolve(inputPath);
  const handle = await open(path, 'r');
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new CheckpointError(`${inputPath} is not a regular file`);
    const head = Buffer.alloc(Math.min(HEAD_BYTES, info.size));
    await handle.read(head, 0, head.length, 0);
    return { path, size: info.size, mtimeMs: info.mtimeMs, headSha256: createHash('sha256').update(head).digest('hex') };
  } finally {
    await handle.close();
  }
}

const checkpointSchema = z.object({
  version: z.literal(1),
  input: z.object({
    path: z.string(),
    size: z.number().int().nonnegative(),
    mtimeMs: z.number(),
    headSha256: z.string(),
  }),
  format: z.enum(inputFormats),
  linesAcknowledged: z.number().int().nonnegative(),
  bytesAcknowledged: z.number().int().nonnegative(),
  complete: z.boolean(),
  updatedAt: z.string(),
});

/** The checkpoint at `path`, or undefined when there is none. A damaged one is an error, not a restart. */
export async function loadCheckpoint(path: string): Promise<Checkpoint | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(`checkpoint ${path} is not valid JSON; delete it or pass --restart`, { cause: error });
  }
  const parsed = checkpointSchema.safeParse(json);
  if (!parsed.success) {
    throw new CheckpointError(`checkpoint ${path} is not a station-sender checkpoint; delete it or pass --restart`);
  }
  return parsed.data;
}

/** How the input differs from the one the checkpoint was written for, or undefined when it is the same. */
export function describeInputChange(saved: InputIdentity, current: InputIdentity): string | undefined {
  const changes: string[] = [];
  if (saved.path !== current.path) changes.push(`it was written for ${saved.path}`);
  if (saved.size !== current.size) changes.push(`size ${saved.size} -> ${current.size} bytes`);
  if (saved.mtimeMs !== current.mtimeMs) {
    changes.push(`modified ${new Date(saved.mtimeMs).toISOString()} -> ${new Date(current.mtimeMs).toISOString()}`);
  }
  if (saved.headSha256 !== current.headSha256) changes.push('first KiB differs');
  return changes.length > 0 ? changes.join(', ') : undefined;
}

/**
 * Decides where a run starts. Without a checkpoint, or with `restart`, from the top. With one,
 * after its acknowledged prefix — but only when the input is the very file it was written for.
 */
export function planResume(
  checkpoint: Checkpoint | undefined,
  current: InputIdentity,
  format: InputFormat,
  options: { restart: boolean; checkpointPath: string },
): ResumePoint {
  if (!checkpoint || options.restart) return { linesAcknowledged: 0, bytesAcknowledged: 0 };
  const change = describeInputChange(checkpoint.input, current);
  if (change) {
    throw new CheckpointError(
      `the input changed since checkpoint ${options.checkpointPath} was written (${change}); ` +
        'refusing to resume. Pass --restart to send the file from the beginning ' +
        '(records the ingestor already stored are then reported as duplicates).',
    );
  }
  if (checkpoint.format !== format) {
    throw new CheckpointError(
      `checkpoint ${options.checkpointPath} was written reading the file as ${checkpoint.format}, not ${format}; ` +
        'pass the same format or --restart',
    );
  }
  if (checkpoint.bytesAcknowledged > current.size) {
    throw new CheckpointError(`checkpoint ${options.checkpointPath} points past the end of the input; pass --restart`);
  }
  return { linesAcknowledged: checkpoint.linesAcknowledged, bytesAcknowledged: checkpoint.bytesAcknowledged };
}

/** Writes a file so that readers see either the old or the new content, never a torn one. */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temporary, 'w', 0o644);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close();
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/**
 * Persists checkpoint advances, one write at a time; advances that arrive while a write is under
 * way are coalesced into the next write (only the latest matters).
 */
export class CheckpointWriter {
  private latest: Checkpoint | undefined;
  private writing: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    readonly path: string,
    private readonly input: InputIdentity,
    private readonly format: InputFormat,
  ) {}

  record(point: ResumePoint, complete = false): void {
    this.latest = {
      version: 1,
      input: this.input,
      format: this.format,
      linesAcknowledged: point.linesAcknowledged,
      bytesAcknowledged: point.bytesAcknowledged,
      complete,
      updatedAt: new Date().toISOString(),
    };
    if (!this.writing) this.writing = this.drain();
  }

  /** Waits until everything recorded is on disk; throws if a write failed. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.failure) {
      throw new CheckpointError(`cannot write checkpoint ${this.path}: ${(this.failure as Error).message}`, {
        cause: this.failure,
      });
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.latest) {
        const next = this.latest;
        this.latest = undefined;
        await writeFileAtomic(this.path, `${JSON.stringify(next, null, 2)}\n`);
      }
    } catch (error) {
      this.failure ??= error;
    } finally {
      this.writing = undefined;
    }
  }
}

/**
 * Batches complete out of order; the checkpoint may only cover lines whose every record has a
 * final outcome. Ranges of lines are registered in file order and completed in any order; the
 * acknowledged prefix advances over the contiguous run of completed ranges.
 */
export class AcknowledgedPrefix {
  private readonly ranges: { id: number; end: ResumePoint; done: boolean }[] = [];
  private nextId = 0;
  private acknowledged: ResumePoint;
  private lastRegistered: ResumePoint;

  constructor(start: ResumePoint = { linesAcknowledged: 0, bytesAcknowledged: 0 }) {
    this.acknowledged = { ...start };
    this.lastRegistered = { ...start };
  }

  get current(): ResumePoint {
    return { ...this.acknowledged };
  }

  /** Ranges registered but not yet acknowledged. */
  get outstanding(): number {
    return this.ranges.length;
  }

  /** Registers the lines after the previous range, up to and including `end`. Returns its id. */
  register(end: ResumePoint): number {
    if (end.linesAcknowledged < this.lastRegistered.linesAcknowledged) {
      throw new Error(`ranges must be registered in file order (${end.linesAcknowledged} after ${this.lastRegistered.linesAcknowledged})`);
    }
    const id = this.nextId++;
    this.ranges.push({ id, end: { ...end }, done: false });
    this.lastRegistered = { ...end };
    return id;
  }

  /** Marks a range done. Returns the new acknowledged prefix when it advanced, else undefined. */
  complete(id: number): ResumePoint | undefined {
    const range = this.ranges.find((candidate) => candidate.id === id);
    if (!range) throw new Error(`unknown or already acknowledged range ${id}`);
    range.done = true;
    let advanced = false;
    while (this.ranges[0]?.done) {
      this.acknowledged = (this.ranges.shift() as { end: ResumePoint }).end;
      advanced = true;
    }
    return advanced ? this.current : undefined;
  }
}

