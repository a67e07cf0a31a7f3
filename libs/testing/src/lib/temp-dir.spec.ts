import { existsSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { trackedDirList } from './cleanup-registry';
import { tempDir } from './temp-dir';

describe('tempDir', () => {
  it('creates a fresh directory, tracks it, and remove() deletes it with its content', async () => {
    const dir = await tempDir('spec case');
    expect(basename(dir.path)).toMatch(/^tollstream-spec_case-/);
    expect(existsSync(dir.path)).toBe(true);
    expect(trackedDirList()).toContain(dir.path);
    writeFileSync(join(dir.path, 'file.txt'), 'x');

    await dir.remove();
    expect(existsSync(dir.path)).toBe(false);
    expect(trackedDirList()).not.toContain(dir.path);
    await expect(dir.remove()).resolves.toBeUndefined();
  });

  it('gives every caller its own directory', async () => {
    const [a, b] = await Promise.all([tempDir('same'), tempDir('same')]);
    expect(a.path).not.toBe(b.path);
    await Promise.all([a.remove(), b.remove()]);
  });
});
