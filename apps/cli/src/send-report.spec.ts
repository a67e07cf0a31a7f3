import type { SendSummary } from '@tollstream/station-sender';
import { exitCodeFor, formatSummary } from './send-report';

const summary = (overrides: Partial<SendSummary> = {}): SendSummary => ({
  inputPath: 'day.ndjson',
  format: 'ndjson',
  checkpointPath: 'day.ndjson.checkpoint.json',
  resumedAfterLine: 0,
  linesRead: 10,
  recordsRead: 10,
  unparseable: 0,
  sent: 10,
  accepted: 10,
  duplicate: 0,
  rejected: 0,
  rejectedByCode: {},
  retriedCalls: 0,
  resentRecords: 0,
  linesAcknowledged: 10,
  complete: true,
  interrupted: false,
  parseProblems: [],
  rejections: [],
  durationMs: 1234,
  ...overrides,
});

describe('exitCodeFor', () => {
  it.each([
    [{}, 0],
    [{ accepted: 8, duplicate: 2 }, 0],
    [{ rejected: 1, rejectedByCode: { TOO_OLD: 1 } }, 2],
    [{ unparseable: 1 }, 2],
    [{ complete: false, interrupted: true }, 130],
  ])('%j exits %i', (overrides, code) => expect(exitCodeFor(summary(overrides))).toBe(code));
});

describe('formatSummary', () => {
  it('shows the counts, rejections by code and the first problems with line numbers', () => {
    const text = formatSummary(
      summary({
        linesRead: 7,
        recordsRead: 5,
        unparseable: 2,
        sent: 5,
        accepted: 2,
        duplicate: 1,
        rejected: 2,
        rejectedByCode: { TOO_OLD: 1, INVALID_FIELD: 1 },
        retriedCalls: 1,
        parseProblems: [{ line: 3, reason: 'amount_minor: "12.5" is not an integer' }],
        rejections: [{ line: 5, transactionId: 'tx-5', code: 'TOO_OLD', field: 'occurred_at', reason: 'occurred_at: too old' }],
      }),
    );
    expect(text).toContain('day.ndjson (ndjson): complete in 1.2 s');
    expect(text).toMatch(/rejected\s+2\s+INVALID_FIELD 1, TOO_OLD 1/);
    expect(text).toMatch(/retried calls\s+1/);
    expect(text).toContain('unparseable lines (first 1 of 2):\n  line 3: amount_minor: "12.5" is not an integer');
    expect(text).toContain('rejected records (first 1 of 2):\n  line 5: tx-5: TOO_OLD: occurred_at: too old');
  });

  it('says when there was nothing left to send, and how to resume an interrupted run', () => {
    expect(formatSummary(summary({ resumedAfterLine: 10, linesRead: 0, sent: 0, accepted: 0 }))).toContain(
      'nothing left to send; pass --restart',
    );
    expect(formatSummary(summary({ complete: false, interrupted: true, linesAcknowledged: 4 }))).toContain(
      'interrupted: 4 lines acknowledged; run the same command again to resume',
    );
  });
});
