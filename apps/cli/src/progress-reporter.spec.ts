import type { SendProgress } from '@tollstream/station-sender';
import { Writable } from 'node:stream';
import { barReporter, describeRetry, plainReporter, silentReporter } from './progress-reporter';

const progress = (bytesAcknowledged: number, accepted: number): SendProgress => ({
  counts: {
    linesRead: accepted,
    recordsRead: accepted,
    unparseable: 1,
    sent: accepted,
    accepted,
    duplicate: 2,
    rejected: 3,
    rejectedByCode: { INVALID_FIELD: 3 },
    retriedCalls: 0,
    resentRecords: 0,
  },
  linesAcknowledged: accepted,
  bytesAcknowledged,
  bytesTotal: 1000,
  batchesInFlight: 1,
});

describe('plainReporter', () => {
  it('prints one line per interval, the latest state at the end, and retries as they happen', () => {
    const lines: string[] = [];
    let now = 0;
    const reporter = plainReporter((text) => lines.push(text), 5_000, () => now);
    reporter.update(progress(100, 10));
    now = 4_000;
    reporter.update(progress(200, 20));
    now = 5_500;
    reporter.update(progress(300, 30));
    now = 6_000;
    reporter.update(progress(1000, 100));
    reporter.retry({ firstLine: 1, lastLine: 500, attempt: 2, maxAttempts: 8, delayMs: 250, reason: 'UNAVAILABLE: down' });
    reporter.stop();
    expect(lines).toEqual([
      'progress: 30% | 30 lines acknowledged | accepted 30, duplicate 2, rejected 3, unparseable 1\n',
      'retrying lines 1-500 (attempt 2 of 8) in 0.3 s: UNAVAILABLE: down\n',
      'progress: 100% | 100 lines acknowledged | accepted 100, duplicate 2, rejected 3, unparseable 1\n',
    ]);
  });

  it('describes retries', () => {
    expect(describeRetry({ firstLine: 501, lastLine: 1000, attempt: 3, maxAttempts: 8, delayMs: 1234, reason: 'x' })).toBe(
      'retrying lines 501-1000 (attempt 3 of 8) in 1.2 s: x',
    );
    expect(describeRetry({ firstLine: 1, lastLine: 500, attempt: 2, maxAttempts: 8, delayMs: 1_050, askedDelayMs: 1_000, reason: 'UNAVAILABLE: y' })).toBe(
      'retrying lines 1-500 (attempt 2 of 8) in 1.1 s (as the ingestor asked): UNAVAILABLE: y',
    );
  });
});

describe('silentReporter', () => {
  it('writes notes only', () => {
    const lines: string[] = [];
    const reporter = silentReporter((text) => lines.push(text));
    reporter.update(progress(1, 1));
    reporter.note('stopping');
    reporter.stop();
    expect(lines).toEqual(['stopping\n']);
  });
});

describe('barReporter', () => {
  it('draws a bar over the acknowledged bytes on a terminal', () => {
    let output = '';
    const terminal = Object.assign(
      new Writable({
        write(chunk: Buffer | string, _encoding, callback) {
          output += chunk.toString();
          callback();
        },
      }),
      { isTTY: true, columns: 200, cursorTo: () => true, clearLine: () => true, moveCursor: () => true },
    );
    const reporter = barReporter(terminal);
    reporter.update(progress(0, 0));
    reporter.update(progress(500, 50));
    reporter.stop();
    expect(output).toContain('sending [');
    expect(output).toMatch(/50% \| 50 lines \| accepted 50 duplicate 2 rejected 3 unparseable 1/);
  });
});
