import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
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

export async function runStatus(options: StatusCommandOptions, stdout: NodeJS.WritableStream): Promise<void> {
  const nc = await connect({ servers: options.natsUrl.split(','), name: 'tollstream-cli', timeout: 5_000 });
  try {
    const statuses = await inspectStreams(await jetstreamManager(nc));
    stdout.write(options.json ? `${JSON.stringify(statuses, null, 2)}\n` : formatStatus(statuses));
  } finally {
    await nc.close();
  }
}
