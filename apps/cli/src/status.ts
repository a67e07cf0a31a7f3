import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { RedriveLedger, type RedriveOutcome } from '@tollstream/dead-letters';
import { inspectStreams, type StreamStatus } from '@tollstream/messaging';

export interface StatusCommandOptions {
  natsUrl: string;
  json?: boolean;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Human-readable view of the platform's streams, for operators. */
export function formatStatus(statuses: readonly StreamStatus[]): string {
  const lines: string[] = [];
  for (const status of statuses) {
    if (!status.exists) {
      lines.push(`${status.stream}: not provisioned yet (a service creates it at start-up)`);
      continue;
    }
    lines.push(`${status.stream}: ${status.messages} messages, ${mib(status.bytes)}` +
      (status.lastTime ? `, newest ${status.lastTime}` : ''));
    for (const [subject, count] of Object.entries(status.subjects).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
      lines.push(`  ${subject.padEnd(28)} ${count}`);
    }
    for (const consumer of status.consumers) {
      lines.push(`  consumer ${consumer.name}: ${consumer.pending} not yet delivered (lag), ${consumer.ackPending} awaiting ack, ${consumer.redelivered} redelivered`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Re-drive runs and the latest outcome of every re-driven dead letter, as `RedriveLedger.tally` counts them. */
export interface RedriveTally {
  runs: number;
  redriven: number;
  byOutcome: Partial<Record<RedriveOutcome, number>>;
}

/** `tollstream status --json`: the streams, and the re-drives recorded in the KV bucket `dlq-redrives`. */
export interface StatusReport {
  streams: readonly StreamStatus[];
  deadLetterRedrives: { runs: number; redriven: number; byOutcome: Record<RedriveOutcome, number> };
}

/** The figures of `formatRedrives` for scripts: every outcome present (0 when none), zeros when no re-drive has run. */
export function redrivesReport(tally: RedriveTally | undefined): StatusReport['deadLetterRedrives'] {
  const byOutcome: Record<RedriveOutcome, number> = { accepted: 0, duplicate: 0, 'rejected-again': 0, republished: 0, failed: 0 };
  for (const [outcome, count] of Object.entries(tally?.byOutcome ?? {}) as Array<[RedriveOutcome, number]>) byOutcome[outcome] = count;
  return { runs: tally?.runs ?? 0, redriven: tally?.redriven ?? 0, byOutcome };
}

/** The re-drives of dead letters (`tollstream dlq redrive`), counted from their ledger. */
export function formatRedrives(tally: RedriveTally | undefined): string {
  if (!tally) return 'dead letters re-driven: none (no re-drive has run)\n';
  const outcomes = Object.entries(tally.byOutcome)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([outcome, count]) => `${outcome} ${count}`)
    .join(', ');
  return `dead letters re-driven: ${tally.redriven} in ${tally.runs} run${tally.runs === 1 ? '' : 's'}${outcomes ? ` (${outcomes})` : ''}\n`;
}

export async function runStatus(options: StatusCommandOptions, stdout: NodeJS.WritableStream): Promise<void> {
  const nc = await connect({ servers: options.natsUrl.split(','), name: 'tollstream-cli', timeout: 5_000 });
  try {
    const jsm = await jetstreamManager(nc);
    const statuses = await inspectStreams(jsm);
    const ledger = await RedriveLedger.openIfExists(jetstream(nc), jsm);
    const tally = await ledger?.tally();
    if (options.json) {
      const report: StatusReport = { streams: statuses, deadLetterRedrives: redrivesReport(tally) };
      stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    stdout.write(formatStatus(statuses) + formatRedrives(tally));
  } finally {
    await nc.close();
  }
}
