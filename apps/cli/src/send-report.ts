import type { SendSummary } from '@tollstream/station-sender';

/** Exit codes of `tollstream send`. */
export const ExitCode = {
  /** Every parseable record ended ACCEPTED or DUPLICATE, and no line was unparseable. */
  ok: 0,
  /** Fatal: bad usage, credentials, input or checkpoint refused, ingestor unreachable after retries. */
  fatal: 1,
  /** The run completed, but some records were rejected or some lines could not be parsed. */
  completedWithProblems: 2,
  /** Stopped by Ctrl-C (SIGINT) or SIGTERM; rerun the same command to resume. */
  interrupted: 130,
} as const;

export function exitCodeFor(summary: SendSummary): number {
  if (!summary.complete) return ExitCode.interrupted;
  return summary.rejected > 0 || summary.unparseable > 0 ? ExitCode.completedWithProblems : ExitCode.ok;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The human-readable summary printed at the end of `tollstream send`. */
export function formatSummary(summary: SendSummary): string {
  const out: string[] = [];
  const row = (label: string, value: string | number, note = '') =>
    out.push(`  ${label.padEnd(14)}${String(value).padStart(10)}${note ? `  ${note}` : ''}`);
  const state = summary.complete ? 'complete' : summary.interrupted ? 'interrupted' : 'stopped';
  out.push(`${summary.inputPath} (${summary.format}): ${state} in ${seconds(summary.durationMs)}`);
  if (summary.resumedAfterLine > 0) {
    out.push(`  resumed after line ${summary.resumedAfterLine}, acknowledged by an earlier run (checkpoint ${summary.checkpointPath})`);
  }
  if (summary.complete && summary.resumedAfterLine > 0 && summary.linesRead === 0) {
    out.push('  nothing left to send; pass --restart to send the whole file again');
  }
  row('lines read', summary.linesRead);
  row('records read', summary.recordsRead);
  row('unparseable', summary.unparseable, summary.unparseable > 0 ? 'lines skipped' : '');
  row('sent', summary.sent);
  row('accepted', summary.accepted);
  row('duplicate', summary.duplicate, summary.duplicate > 0 ? 'stored earlier; not stored or billed again' : '');
  const byCode = Object.entries(summary.rejectedByCode)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, count]) => `${code} ${count}`)
    .join(', ');
  row('rejected', summary.rejected, byCode);
  if (summary.retriedCalls + summary.resentRecords > 0) {
    row('retried calls', summary.retriedCalls);
    row('resent records', summary.resentRecords);
  }
  row('acknowledged', summary.linesAcknowledged, `lines, in ${summary.checkpointPath}`);

  if (summary.parseProblems.length > 0) {
    out.push('', `unparseable lines (${listed(summary.parseProblems.length, summary.unparseable)}):`);
    for (const problem of summary.parseProblems) out.push(`  line ${problem.line}: ${problem.reason}`);
  }
  if (summary.rejections.length > 0) {
    out.push('', `rejected records (${listed(summary.rejections.length, summary.rejected)}):`);
    for (const rejection of summary.rejections) {
      out.push(`  line ${rejection.line}: ${rejection.transactionId}: ${rejection.code}: ${rejection.reason || '(no reason given)'}`);
    }
  }
  if (summary.interrupted) {
    out.push('', `interrupted: ${summary.linesAcknowledged} lines acknowledged; run the same command again to resume`);
  }
  return `${out.join('\n')}\n`;
}

const listed = (shown: number, total: number) => (shown < total ? `first ${shown} of ${total}` : `${total}`);
