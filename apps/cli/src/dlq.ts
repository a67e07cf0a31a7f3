import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  decodeOriginal,
  DeadLetterFilterError,
  filterIsEmpty,
  getDeadLetter,
  parseDeadLetterFilter,
  readDeadLetters,
  RedriveError,
  RedriveLedger,
  redriveDeadLetters,
  stationRecordOf,
  viewOf,
  type DeadLetterFilter,
  type DeadLetterView,
  type RawDeadLetterFilter,
  type RedriveProgress,
  type RedriveSummary,
} from '@tollstream/dead-letters';
import { createGrpcIngestTransport } from '@tollstream/station-sender';
import { TollTransaction } from '@tollstream/contracts';
import { formatResult } from '@tollstream/warehouse';
import { Presets, SingleBar } from 'cli-progress';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { hostname, userInfo } from 'node:os';

export const dlqFormats = ['table', 'json', 'ndjson'] as const;
export type DlqFormat = (typeof dlqFormats)[number];

export interface DlqConnectionOptions {
  natsUrl: string;
  ledgerBucket: string;
}

export interface DlqFilterOptions extends DlqConnectionOptions {
  source?: string;
  reason?: string;
  station?: string;
  since?: string;
  until?: string;
}

export interface DlqListOptions extends DlqFilterOptions {
  after?: number;
  limit: number;
  format: DlqFormat;
}

export interface DlqShowOptions extends DlqConnectionOptions {
  json?: boolean;
}

export interface DlqExportOptions extends DlqFilterOptions {
  out?: string;
}

export interface DlqRedriveOptions extends DlqFilterOptions {
  all?: boolean;
  dryRun?: boolean;
  ingestAddress: string;
  /** Resolved by the caller: undefined when no token was given (then ingestor dead letters cannot be re-driven). */
  token?: string;
  batchSize: number;
  deadlineMs: number;
  maxAttempts: number;
  operator?: string;
  json?: boolean;
  progress: boolean;
  maxReported: number;
}

/** A dlq command that cannot do what was asked; printed as `error: ...` with exit code 1. */
export class DlqCommandError extends Error {}

interface Broker {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

async function withBroker<T>(natsUrl: string, run: (broker: Broker) => Promise<T>): Promise<T> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: natsUrl.split(','), name: 'tollstream-cli-dlq', timeout: 5_000 });
  } catch (error) {
    throw new DlqCommandError(`cannot connect to NATS at ${natsUrl}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    return await run({ nc, js: jetstream(nc), jsm: await jetstreamManager(nc) });
  } finally {
    await nc.close();
  }
}

function filterOf(options: DlqFilterOptions, ids: readonly string[] = []): DeadLetterFilter {
  const raw: RawDeadLetterFilter = { source: options.source, reason: options.reason, station: options.station, since: options.since, until: options.until, ids };
  try {
    return parseDeadLetterFilter(raw);
  } catch (error) {
    if (error instanceof DeadLetterFilterError) throw new DlqCommandError(error.message);
    throw error;
  }
}

const listColumns = ['id', 'dead_lettered_at', 'source', 'reason_code', 'station_id', 'reason', 'redriven'] as const;

const redrivenText = (view: DeadLetterView): string => (view.redrive ? `${view.redrive.outcome} ${view.redrive.at}` : '');

export async function runDlqList(options: DlqListOptions, stdout: NodeJS.WritableStream): Promise<void> {
  const filter = filterOf(options);
  await withBroker(options.natsUrl, async ({ js, jsm }) => {
    const ledger = await RedriveLedger.open(js, { bucket: options.ledgerBucket });
    const views: DeadLetterView[] = [];
    let more = false;
    for await (const stored of readDeadLetters(js, jsm, filter, { afterId: options.after })) {
      if (views.length === options.limit) {
        more = true;
        break;
      }
      views.push(viewOf(stored.id, stored.subject, stored.letter, await ledger.markOf(stored.id)));
    }
    const next = more ? views[views.length - 1]?.id : undefined;
    if (options.format === 'json') {
      stdout.write(`${JSON.stringify({ deadLetters: views, next: next ?? null }, null, 2)}\n`);
      return;
    }
    if (options.format === 'ndjson') {
      for (const view of views) stdout.write(`${JSON.stringify(view)}\n`);
      return;
    }
    const rows = views.map((view) => [view.id, view.deadLetteredAt, view.source, view.reasonCode, view.stationId, view.reason, redrivenText(view)]);
    stdout.write(formatResult({ columns: listColumns.map((name) => ({ name, type: name === 'id' ? 'UInt64' : 'String' })), rows, truncated: more, elapsedMs: 0 }, 'table'));
    if (next !== undefined) stdout.write(`more: add --after ${next} for the next page\n`);
  });
}

export async function runDlqShow(idText: string, options: DlqShowOptions, stdout: NodeJS.WritableStream): Promise<void> {
  const [id] = filterOf({ natsUrl: options.natsUrl, ledgerBucket: options.ledgerBucket }, [idText]).ids ?? [];
  await withBroker(options.natsUrl, async ({ js, jsm }) => {
    const stored = await getDeadLetter(jsm, id).catch((error: unknown) => {
      throw new DlqCommandError(error instanceof Error ? error.message : String(error));
    });
    const ledger = await RedriveLedger.open(js, { bucket: options.ledgerBucket });
    const view = viewOf(stored.id, stored.subject, stored.letter, await ledger.markOf(stored.id));
    const original = decodeOriginal(stored.letter.source, stored.letter.originalSubject, stored.letter.original);
    const redrives = await ledger.historyOf(stored.id);
    if (options.json) {
      stdout.write(`${JSON.stringify({ ...view, unreadable: stored.unreadable ?? null, original, redrives }, null, 2)}\n`);
      return;
    }
    const lines = [
      `dead letter ${view.id} (${view.subject})`,
      `  source            ${view.source}`,
      `  reason            ${view.reasonCode}: ${view.reason}`,
      `  dead-lettered at  ${view.deadLetteredAt ?? 'unknown'}`,
      `  station           ${view.stationId || '-'}`,
      `  came from         ${view.source === 'ingestor' ? 'the station API (SubmitTransactions / StreamTransactions)' : view.originalSubject || 'unknown'}` +
        (view.originalMsgId ? ` (message id ${view.originalMsgId})` : ''),
    ];
    if (stored.unreadable) lines.push(`  unreadable        ${stored.unreadable}`);
    lines.push(original.type ? `  original          ${original.type}, ${original.bytes} bytes:` : `  original          ${original.bytes} bytes that fit no expected type (base64): ${original.base64}`);
    if (original.type) lines.push(...JSON.stringify(original.value, null, 2).split('\n').map((line) => `    ${line}`));
    if (redrives.length === 0) lines.push('  re-driven         never');
    for (const mark of redrives) lines.push(`  re-driven         ${mark.at} by ${mark.by} via ${mark.route}: ${mark.outcome} (${mark.detail}) run ${mark.runId}`);
    stdout.write(`${lines.join('\n')}\n`);
  });
}

/** Writes the ingestor dead letters a filter selects as NDJSON station records that `tollstream send` reads. */
export async function runDlqExport(options: DlqExportOptions, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<void> {
  const filter = filterOf(options);
  if (filter.sources && !filter.sources.includes('ingestor')) {
    throw new DlqCommandError('export writes station records for `tollstream send`: only ingestor dead letters are station records (use `dlq show --json` for the others)');
  }
  await withBroker(options.natsUrl, async ({ js, jsm }) => {
    const out = options.out ? createWriteStream(options.out, { encoding: 'utf8' }) : stdout;
    let exported = 0;
    let skipped = 0;
    let firstId: number | undefined;
    let lastId: number | undefined;
    try {
      for await (const stored of readDeadLetters(js, jsm, { ...filter, sources: ['ingestor'] })) {
        let transaction: TollTransaction;
        try {
          transaction = TollTransaction.decode(stored.letter.original);
        } catch {
          skipped++;
          continue;
        }
        if (!out.write(`${JSON.stringify(stationRecordOf(transaction))}\n`)) await once(out, 'drain');
        exported++;
        firstId ??= stored.id;
        lastId = stored.id;
      }
    } finally {
      if (out !== stdout) {
        out.end();
        await once(out, 'close');
      }
    }
    stderr.write(
      `exported ${exported} station record${exported === 1 ? '' : 's'}${firstId !== undefined ? ` (dead letters ${firstId}-${lastId})` : ''}` +
        `${options.out ? ` to ${options.out}` : ''}${skipped > 0 ? `; ${skipped} not decodable as a TollTransaction, skipped` : ''}\n`,
    );
  });
}

export function defaultOperator(env: NodeJS.ProcessEnv): string {
  if (env.TOLLSTREAM_OPERATOR) return env.TOLLSTREAM_OPERATOR;
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

/** Exit code of a re-drive: 0 all settled, 2 some dead letters not re-driven or rejected again, 130 interrupted. */
export function redriveExitCode(summary: RedriveSummary): number {
  if (summary.incomplete) return 130;
  const { counts } = summary;
  return counts['rejected-again'] + counts.failed + counts['not-redrivable'] > 0 ? 2 : 0;
}

export function formatRedriveSummary(summary: RedriveSummary): string {
  const { counts } = summary;
  const lines = [
    `${summary.dryRun ? 'dry run (nothing re-driven)' : `re-drive ${summary.runId}`}: ${summary.selected} dead letter${summary.selected === 1 ? '' : 's'} selected${summary.incomplete ? ', INTERRUPTED: run it again to finish' : ''}`,
  ];
  const row = (label: string, value: number, note: string) => lines.push(`  ${label.padEnd(18)}${String(value).padStart(8)}  ${note}`);
  if (!summary.dryRun) {
    row('accepted', counts.accepted, 'stored by the station API now');
    row('duplicate', counts.duplicate, 'already stored (nothing new)');
    row('rejected again', counts['rejected-again'], 'still wrong: dead-lettered again with the reason');
    row('republished', counts.republished, 'to the subject they came from');
    row('failed', counts.failed, 'ingestor unavailable: run again');
  }
  row('already re-driven', counts['already-redriven'], 'left alone');
  row('not re-drivable', counts['not-redrivable'], 'see the reason per dead letter');
  const items = summary.items.filter((item) => summary.dryRun || item.action !== 'already-redriven');
  if (items.length > 0) {
    lines.push(
      formatResult(
        {
          columns: ['id', 'source', 'reason_code', 'station_id', summary.dryRun ? 'plan' : 'outcome', 'detail'].map((name) => ({ name, type: name === 'id' ? 'UInt64' : 'String' })),
          rows: items.map((item) => [item.id, item.source, item.reasonCode, item.stationId, item.outcome ?? item.action, item.detail]),
          truncated: false,
          elapsedMs: 0,
        },
        'table',
      ).trimEnd(),
    );
  }
  return `${lines.join('\n')}\n`;
}

export interface RedriveReporter {
  update(progress: RedriveProgress): void;
  stop(): void;
}

export function redriveReporter(stderr: NodeJS.WritableStream, tty: boolean, enabled: boolean, intervalMs = 5_000): RedriveReporter {
  if (!enabled) return { update: () => undefined, stop: () => undefined };
  const describe = (p: RedriveProgress) =>
    `${p.done}/${p.total} | accepted ${p.counts.accepted} duplicate ${p.counts.duplicate} rejected again ${p.counts['rejected-again']} republished ${p.counts.republished} failed ${p.counts.failed}`;
  if (!tty) {
    let lastAt = 0;
    let latest: RedriveProgress | undefined;
    return {
      update(progress) {
        latest = progress;
        if (Date.now() - lastAt >= intervalMs) {
          lastAt = Date.now();
          stderr.write(`re-drive: ${describe(progress)}\n`);
        }
      },
      stop: () => {
        if (latest && latest.done > 0) stderr.write(`re-drive: ${describe(latest)}\n`);
      },
    };
  }
  const bar = new SingleBar(
    { stream: stderr, format: 're-driving [{bar}] {value}/{total} | accepted {accepted} duplicate {duplicate} rejected again {rejected} republished {republished} | ETA {eta_formatted}', hideCursor: true, fps: 10 },
    Presets.shades_classic,
  );
  let started = false;
  const payload = (p: RedriveProgress) => ({ accepted: p.counts.accepted, duplicate: p.counts.duplicate, rejected: p.counts['rejected-again'], republished: p.counts.republished });
  return {
    update(progress) {
      if (!started) {
        bar.start(Math.max(progress.total, 1), progress.done, payload(progress));
        started = true;
      } else bar.update(progress.done, payload(progress));
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

export interface RedriveIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stderrIsTTY: boolean;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

export async function runDlqRedrive(ids: readonly string[], options: DlqRedriveOptions, io: RedriveIo): Promise<number> {
  const filter = filterOf(options, ids);
  if (filterIsEmpty(filter) && !options.all) {
    throw new DlqCommandError('say which dead letters: ids, a filter (--source, --reason, --station, --since, --until), or --all');
  }
  return withBroker(options.natsUrl, async ({ js, jsm }) => {
    const ledger = await RedriveLedger.open(js, { bucket: options.ledgerBucket });
    const reporter = redriveReporter(io.stderr, io.stderrIsTTY, options.progress && !options.dryRun);
    let summary: RedriveSummary;
    try {
      summary = await redriveDeadLetters({
        js,
        jsm,
        ledger,
        filter,
        by: options.operator ?? defaultOperator(io.env),
        dryRun: options.dryRun,
        stationApi: () => {
          if (!options.token) {
            throw new Error('ingestor dead letters are selected: a station token is needed to submit them (--token-file, STATION_TOKEN_FILE or STATION_TOKEN)');
          }
          return createGrpcIngestTransport({ address: options.ingestAddress, token: options.token });
        },
        batchSize: options.batchSize,
        callDeadlineMs: options.deadlineMs,
        retry: { maxAttempts: options.maxAttempts },
        maxReported: options.maxReported,
        signal: io.signal,
        onProgress: (progress) => reporter.update(progress),
      });
    } catch (error) {
      reporter.stop();
      if (error instanceof DeadLetterFilterError) throw new DlqCommandError(error.message);
      if (error instanceof RedriveError) {
        const partial = error.summary;
        if (options.json) io.stdout.write(`${JSON.stringify({ ...partial, error: error.message }, null, 2)}\n`);
        else io.stdout.write(formatRedriveSummary(partial));
        throw new DlqCommandError(`re-drive stopped: ${error.message} (what was re-driven is marked; run it again to go on)`);
      }
      throw error;
    }
    reporter.stop();
    io.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : formatRedriveSummary(summary));
    return redriveExitCode(summary);
  });
}
