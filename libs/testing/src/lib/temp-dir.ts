import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackDir, untrackDir } from './cleanup-registry';

export interface TempDirHandle {
  readonly path: string;
  remove(): Promise<void>;
}

/**
 * A fresh directory under the OS temp dir (`tollstream-<prefix>-XXXXXX`), removed by remove()
 * or, at the latest, when the process exits.
 */
export async function tempDir(prefix: string): Promise<TempDirHandle> {
  const safePrefix = prefix.replace(/[^A-Za-z0-9._-]/g, '_') || 'tmp';
  const path = await mkdtemp(join(tmpdir(), `tollstream-${safePrefix}-`));
  trackDir(path);
  return {
    path,
    async remove(): Promise<void> {
      await rm(path, { recursive: true, force: true, maxRetries: 3 });
      untrackDir(path);
    },
  };
}
