// Runs every jest suite of the monorepo and ends with one line "N passed, N failed, N skipped"
// (the totals of all suites), which CI reads. Skipped suites print their reason (see libs/testing).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const tmp = join(root, 'tmp');
mkdirSync(tmp, { recursive: true });
const resultsFile = join(tmp, 'jest-results.json');
const skipReport = join(tmp, 'skipped-suites.txt');
rmSync(resultsFile, { force: true });
rmSync(skipReport, { force: true });
rmSync(join(tmp, 'test-summary.txt'), { force: true });

const jest = spawnSync(
  process.execPath,
  [join(root, 'node_modules/jest/bin/jest.js'), '--json', `--outputFile=${resultsFile}`, ...process.argv.slice(2)],
  { cwd: root, stdio: 'inherit', env: { ...process.env, TOLLSTREAM_SKIP_REPORT: skipReport } },
);

if (existsSync(skipReport)) {
  console.log('\nSkipped, with reasons:');
  console.log(readFileSync(skipReport, 'utf8').trim());
}
const summaryFile = join(tmp, 'test-summary.txt');
const report = (line) => {
  writeFileSync(summaryFile, `${line}\n`);
  console.log(line);
};
if (!existsSync(resultsFile)) {
  report('0 passed, 1 failed');
  process.exit(jest.status || 1);
}
const results = JSON.parse(readFileSync(resultsFile, 'utf8'));
// A suite that failed to run at all (syntax error, crash) has no tests: count it as one failure.
const brokenSuites = results.testResults.filter((suite) => suite.status === 'failed' && suite.assertionResults.length === 0).length;
const failed = results.numFailedTests + brokenSuites;
const skipped = results.numPendingTests + results.numTodoTests;
report(`${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || jest.status !== 0 ? 1 : 0);
