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

/** The re-drives of dead letters (`tollstream dlq redrive`), counted from their ledger. */
export function formatRedrives(tally: { runs: number; redriven: number; byOutcome: Partial<Record<RedriveOutcome, number>> } | undefined): string {
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
    if (options.json) {
      stdout.write(`${JSON.stringify(statuses, null, 2)}\n`);
      return;
    }
    const ledger = await RedriveLedger.openIfExists(jetstream(nc), jsm);
    stdout.write(formatStatus(statuses) + formatRedrives(await ledger?.tally()));
  } finally {
    await nc.close();
  }
}
