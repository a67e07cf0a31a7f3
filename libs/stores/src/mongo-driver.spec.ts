import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '../../..');

describe('the MongoDB driver', () => {
  it('is not loaded by importing the stores (it costs ~23 MiB of RSS in every service): only by opening a MongoDB store', () => {
    const script = [
      "require('./libs/stores/src/index.ts');",
      "const loaded = Object.keys(require.cache).filter((file) => file.includes('/node_modules/mongodb/') || file.includes('/node_modules/bson/'));",
      "const stores = Object.keys(require.cache).filter((file) => file.includes('/libs/stores/src/'));",
      'process.stdout.write(JSON.stringify({ loaded: loaded.length, stores: stores.length }));',
    ].join('\n');
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    const { loaded, stores } = JSON.parse(run.stdout) as { loaded: number; stores: number };
    expect(stores).toBeGreaterThan(5); // the stores' modules themselves were loaded
    expect(loaded).toBe(0);
  });
});
