import {
  addClientTlsOptions,
  CheckpointError,
  clientTlsFromOptions,
  defaultCheckpointPath,
  InputFileError,
  inputFormats,
  SendError,
  sendFile,
  type InputFormat,
  type SendSummary,
} from '@tollstream/station-sender';
import { ClientTlsError, grpcClientCredentials, httpsClientOptions } from '@tollstream/service-kit';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { barReporter, plainReporter, silentReporter, type ProgressReporter } from './progress-reporter';
import { writeSampleFile } from './sample-data';
import { runStatus, type StatusCommandOptions } from './status';
import { ExitCode, exitCodeFor, formatSummary } from './send-report';
import { resultFormats } from '@tollstream/warehouse';
import { runTrafficList, runTrafficLoad, runTrafficPropose, TrafficCommandError, type TrafficProposeOptions, type TrafficReferenceCommandOptions } from './traffic';
import { runWatch, type WatchCommandOptions } from './watch/watch';
import { DlqCommandError, dlqFormats, runDlqExport, runDlqList, runDlqRedrive, runDlqShow, type DlqExportOptions, type DlqListOptions, type DlqRedriveOptions, type DlqShowOptions } from './dlq';
import { watchedServices } from './watch/dashboard';
import { runMigrate, runSql, WarehouseCommandError, type MigrateCommandOptions, type SqlCommandOptions } from './warehouse';

/** What the command line touches of the process; tests pass their own. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Draw a progress bar (stderr is a terminal). */
  stderrIsTTY: boolean;
  /** stdout is a terminal (the watch view redraws in place). */
  stdoutIsTTY?: boolean;
  /** Subscribe to SIGINT/SIGTERM to stop gracefully (the real process only). */
  handleSignals: boolean;
}

interface ClientTlsCommandOptions {
  tls?: boolean;
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsServerName?: string;
}

interface SendCommandOptions extends ClientTlsCommandOptions {
  ingestAddress: string;
  tokenFile?: string;
  format?: InputFormat;
  batchSize: number;
  inFlight: number;
  deadlineMs: number;
  maxAttempts: number;
  checkpoint?: string;
  restart?: boolean;
  progress: boolean;
  json?: boolean;
  maxReported: number;
  progressInterval: number;
}

interface SampleCommandOptions {
  count: number;
  stations: string[];
  seed: string;
  withFaults?: boolean;
  now?: Date;
}

const integerOption =
  (min: number, max: number) =>
  (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) throw new InvalidArgumentError(`expected ${min} to ${max}, got ${parsed}`);
    return parsed;
  };

const stationList = (value: string): string[] => {
  const stations = value
    .split(',')
    .map((station) => station.trim())
    .filter((station) => station.length > 0);
  if (stations.length === 0) throw new InvalidArgumentError('expected a comma-separated list such as st-001,st-002');
  if (stations.some((station) => !/^[A-Za-z0-9._:-]{1,64}$/.test(station))) {
    throw new InvalidArgumentError('station ids may contain only letters, digits and . _ : - (64 at most)');
  }
  return stations;
};

const portOverrides = (value: string): Record<string, number> => {
  const ports: Record<string, number> = {};
  for (const entry of value.split(',').filter((part) => part.trim().length > 0)) {
    const [name, port] = entry.split('=').map((part) => part.trim());
    if (!watchedServices.some((service) => service.name === name)) {
      throw new InvalidArgumentError(`unknown service "${name}" (expected one of ${watchedServices.map((service) => service.name).join(', ')})`);
    }
    if (!/^\d+$/.test(port ?? '') || Number(port) < 1 || Number(port) > 65_535) throw new InvalidArgumentError(`${name}: expected a port 1-65535, got "${port ?? ''}"`);
    ports[name] = Number(port);
  }
  return ports;
};

const instantOption = (value: string): Date => {
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime()) || !/(Z|[+-]\d{2}:?\d{2})$/i.test(value)) {
    throw new InvalidArgumentError('expected an ISO 8601 instant with offset, e.g. 2024-05-01T09:00:00Z');
  }
  return parsed;
};

class FatalCliError extends Error {}

async function resolveToken(options: { tokenFile?: string }, env: NodeJS.ProcessEnv): Promise<string> {
  let token: string;
  let source: string;
  if (options.tokenFile) {
    source = `token file ${options.tokenFile}`;
    try {
      token = (await readFile(options.tokenFile, 'utf8')).trim();
    } catch (error) {
      throw new FatalCliError(`cannot read the ${source}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  } else if (env.STATION_TOKEN !== undefined) {
    source = 'STATION_TOKEN';
    token = env.STATION_TOKEN.trim();
  } else {
    throw new FatalCliError('a station token is required: pass --token-file, or set STATION_TOKEN_FILE or STATION_TOKEN');
  }
  if (token.length === 0) throw new FatalCliError(`the ${source} is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new FatalCliError(`the ${source} holds spaces or non-printable characters`);
  return token;
}

async function runSend(file: string, options: SendCommandOptions, io: CliIo): Promise<number> {
  const write = (text: string) => io.stderr.write(text);
  const token = await resolveToken(options, io.env);
  // Unreadable TLS files are a usage error: reported before the first line is read.
  grpcClientCredentials(clientTlsFromOptions(options));
  const reporter: ProgressReporter = !options.progress
    ? silentReporter(write)
    : io.stderrIsTTY
      ? barReporter(io.stderr)
      : plainReporter(write, options.progressInterval * 1000);
  const controller = new AbortController();
  let firstStopAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    // One Ctrl-C can arrive twice: from the terminal to the whole process group, and relayed by a
    // wrapper (npx, tsx). Only a second press, a moment later, means "quit now".
    if (firstStopAt !== undefined && Date.now() - firstStopAt < 1_000) return;
    if (firstStopAt !== undefined) {
      write(`\n${signal} again: quitting without waiting; the checkpoint keeps what was acknowledged\n`);
      process.exit(ExitCode.interrupted);
    }
    firstStopAt = Date.now();
    reporter.note(`\n${signal}: stopping after the batches in flight (press Ctrl-C again to quit at once)`);
    controller.abort();
  };
  if (io.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  if (options.progress && !io.stderrIsTTY) {
    write(
      `sending ${file} to ${options.ingestAddress} (batches of ${options.batchSize}, ${options.inFlight} in flight, ` +
        `checkpoint ${options.checkpoint ?? defaultCheckpointPath(file)})\n`,
    );
  }
  let summary: SendSummary;
  try {
    summary = await sendFile({
      inputPath: file,
      format: options.format,
      ingestAddress: options.ingestAddress,
      tls: clientTlsFromOptions(options),
      token,
      batchSize: options.batchSize,
      inFlight: options.inFlight,
      callDeadlineMs: options.deadlineMs,
      retry: { maxAttempts: options.maxAttempts },
      checkpointPath: options.checkpoint,
      restart: options.restart === true,
      maxReported: options.maxReported,
      signal: controller.signal,
      onProgress: (progress) => reporter.update(progress),
      onRetry: (notice) => reporter.retry(notice),
    });
  } catch (error) {
    reporter.stop();
    if (error instanceof SendError && error.summary) {
      const { accepted, duplicate, rejected, unparseable } = error.summary;
      // In text mode the counts are only worth showing when something happened before the failure.
      if (options.json || accepted + duplicate + rejected + unparseable > 0) printSummary(error.summary, options, io, error);
      write(`error: ${error.message}\n`);
      return ExitCode.fatal;
    }
    throw error;
  } finally {
    if (io.handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
  reporter.stop();
  printSummary(summary, options, io);
  return exitCodeFor(summary);
}

function printSummary(summary: SendSummary, options: SendCommandOptions, io: CliIo, error?: SendError): void {
  if (options.json) {
    const failure = error ? { error: { message: error.message, grpcCode: error.grpcCode ?? null } } : {};
    io.stdout.write(`${JSON.stringify({ ...summary, ...failure, exitCode: error ? ExitCode.fatal : exitCodeFor(summary) }, null, 2)}\n`);
  } else {
    io.stdout.write(formatSummary(summary));
  }
}

async function runSample(outFile: string, options: SampleCommandOptions, io: CliIo): Promise<number> {
  const stats = await writeSampleFile(outFile, {
    count: options.count,
    stationIds: options.stations,
    seed: options.seed,
    now: options.now ?? new Date(),
    withFaults: options.withFaults === true,
  });
  const faults = options.withFaults
    ? ` (${stats.unparseable} unparseable, ${stats.duplicate} resent duplicates, ` +
      `${stats['rejected-by-ingestor']} the ingestor rejects)`
    : '';
  io.stdout.write(`wrote ${options.count} lines to ${outFile}${faults}\n`);
  return ExitCode.ok;
}

export function createProgram(io: CliIo, setExitCode: (code: number) => void): Command {
  const program = new Command('tollstream')
    .description('Operator command line of the tollstream toll-transaction platform.')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();

  addClientTlsOptions(
    program
      .command('send')
    .description(
      'Send a file of toll transactions (NDJSON or CSV) to the ingestor, in batches, with retries ' +
        'and a checkpoint so that a rerun resumes where an interrupted run stopped.',
    )
    .argument('<file>', 'transactions: .ndjson/.jsonl (one JSON object per line) or .csv (header row)')
    .addOption(
      new Option('--ingest-address <host:port>', 'ingestor gRPC address (env INGEST_ADDRESS)').default(
        io.env.INGEST_ADDRESS || '127.0.0.1:50051',
      ),
    )
    .addOption(
      new Option(
        '--token-file <path>',
        'file holding the station bearer token (env STATION_TOKEN_FILE; else env STATION_TOKEN)',
      ).default(io.env.STATION_TOKEN_FILE || undefined),
    )
    .addOption(new Option('--format <format>', 'input format (default: from the file extension)').choices(inputFormats))
    .option('--batch-size <n>', 'records per SubmitTransactions call', integerOption(1, 100_000), 500)
    .option('--in-flight <n>', 'calls in flight at once', integerOption(1, 256), 4)
    .option('--deadline-ms <ms>', 'deadline of each call', integerOption(1, 3_600_000), 30_000)
    .option('--max-attempts <n>', 'attempts per batch before giving up', integerOption(1, 1_000), 8)
    .option('--checkpoint <path>', 'checkpoint file (default: <file>.checkpoint.json)')
    .option('--restart', 'ignore the checkpoint and send the file from the first line')
    .option('--no-progress', 'no progress bar or progress lines')
    .option('--progress-interval <s>', 'seconds between progress lines when stderr is not a terminal', integerOption(1, 3_600), 5)
    .option('--json', 'print the summary as JSON on stdout')
    .option('--max-reported <n>', 'unparseable lines and rejected records listed in the summary', integerOption(0, 100_000), 20),
    io.env,
  )
    .addHelpText(
      'after',
      `
Field names (snake_case, as in the proto): transaction_id, station_id, lane_id, tag_id, plate,
account_id, vehicle_class, amount_minor, currency, occurred_at. tag_id, plate and account_id may
be left out. vehicle_class: car, motorcycle, bus, truck_2_axle, truck_3_plus_axle, other (or
VEHICLE_CLASS_*). amount_minor: integer minor units (cents). occurred_at: ISO 8601 with Z or an
offset, e.g. 2024-05-01T08:30:00Z; local times without offset are refused.

Lines that cannot be parsed are reported with their line number and skipped. Records the
ingestor already stored (e.g. resent after a crash) are counted as duplicates.

Exit codes: 0 every record accepted or duplicate; 2 completed, but records were rejected or
lines unparseable; 1 fatal error (credentials, input, checkpoint, ingestor unavailable after
retries); 130 interrupted (Ctrl-C): rerun the same command to resume.`,
    )
    .action(async (file: string, _options: unknown, command: Command) => {
      setExitCode(await runSend(file, command.opts<SendCommandOptions>(), io));
    });

  program
    .command('sample')
    .description('Write realistic sample transactions as NDJSON (deterministic for a seed), for demos and tests.')
    .argument('<out-file>', 'NDJSON file to write (replaced if it exists)')
    .option('--count <n>', 'lines to write', integerOption(0, 100_000_000), 1000)
    .option('--stations <ids>', 'comma-separated station ids', stationList, ['st-001', 'st-002', 'st-003'])
    .option('--seed <seed>', 'seed of the generator: the same seed (and --now) gives the same file', '1')
    .option('--with-faults', 'add a few unparseable lines, resent duplicates and a record the ingestor rejects')
    .option('--now <instant>', 'passes happen in the hour before this instant (default: now)', instantOption)
    .action(async (outFile: string, _options: unknown, command: Command) => {
      setExitCode(await runSample(outFile, command.opts<SampleCommandOptions>(), io));
    });

  program
    .command('status')
    .description('Show the platform streams: messages and size, per-subject counts (partitions, dead letters by source), consumer lag; and the dead-letter re-drives recorded (KV dlq-redrives) by outcome.')
    .addOption(new Option('--nats-url <url>', 'NATS server(s), comma-separated (env NATS_URL)').default(io.env.NATS_URL || 'nats://127.0.0.1:4222'))
    .option('--json', 'print as JSON')
    .action(async (_options: unknown, command: Command) => {
      try {
        await runStatus(command.opts<StatusCommandOptions>(), io.stdout);
      } catch (error) {
        throw new FatalCliError(`cannot read the streams: ${error instanceof Error ? error.message : String(error)}`);
      }
    });

  addClientTlsOptions(
    program
      .command('watch')
    .description(
      'Live view of the running platform: rate, CPU, memory and dead letters of each service (from its /metrics), ' +
        'consumer lag and dead letters by source (JetStream), warehouse freshness, the latest alerts. Read-only; Ctrl-C to quit.',
    )
    .addOption(new Option('--nats-url <url>', 'NATS server(s), comma-separated (env NATS_URL)').default(io.env.NATS_URL || 'nats://127.0.0.1:4222'))
    .option('--host <host>', 'host of the services\' metrics endpoints', '127.0.0.1')
    .option('--ports <list>', `metrics ports that differ from the defaults, e.g. ingestor=19464,windower=19465 (defaults: ${watchedServices.map((service) => `${service.name}=${service.defaultPort}`).join(', ')})`, portOverrides, {})
    .option('--interval <seconds>', 'refresh every this many seconds', integerOption(1, 3600), 2)
    .option('--max-alerts <n>', 'latest alerts shown of each kind (traffic, spending)', integerOption(1, 100), 8)
    .option('--once', 'print one screen (two readings, so rates show) and exit')
    .option('--json', 'print each reading as one JSON line instead of a screen'),
    io.env,
  )
    .action(async (_options: unknown, command: Command) => {
      const options = command.opts<{ natsUrl: string; host: string; ports: Record<string, number>; interval: number; maxAlerts: number; once?: boolean; json?: boolean } & ClientTlsCommandOptions>();
      const tls = clientTlsFromOptions(options);
      // A wrong CA or key path is a usage error, not a service that does not answer.
      httpsClientOptions(tls);
      const watchOptions: WatchCommandOptions = { ...options, intervalSeconds: options.interval, tls };
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => {
        stop = resolve;
      });
      if (io.handleSignals) {
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      try {
        await runWatch(watchOptions, { stdout: io.stdout, isTTY: io.stdoutIsTTY === true, stopped });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  // Dead letters (docs/operations.md).
  const dlq = program
    .command('dlq')
    .description('Dead letters (TOLL_DLQ): list, show, export as station records, re-drive. See docs/operations.md.');
  const dlqConnection = (command: Command): Command =>
    command
      .addOption(new Option('--nats-url <url>', 'NATS server(s), comma-separated (env NATS_URL)').default(io.env.NATS_URL || 'nats://127.0.0.1:4222'))
      .addOption(new Option('--ledger-bucket <name>', 'KV bucket of the re-drive marks and runs (env DLQ_REDRIVE_BUCKET)').default(io.env.DLQ_REDRIVE_BUCKET || 'dlq-redrives'));
  const dlqFilters = (command: Command): Command =>
    dlqConnection(command)
      .option('--source <names>', 'comma-separated sources: ingestor, windower, billing-threshold, traffic-anomaly, warehouse-loader, notifier')
      .option('--reason <codes>', 'comma-separated reason codes, e.g. INVALID_FIELD,PERMISSION_DENIED')
      .option('--station <ids>', 'comma-separated station ids')
      .option('--since <when>', 'dead-lettered at or after: an ISO 8601 instant with offset, or an age such as 30m, 6h, 2d')
      .option('--until <when>', 'dead-lettered before (same forms as --since)');
  const dlqAction =
    <T extends unknown[]>(run: (...args: T) => Promise<void>) =>
    async (...args: T): Promise<void> => {
      try {
        await run(...args);
      } catch (error) {
        if (error instanceof DlqCommandError) throw new FatalCliError(error.message);
        throw error;
      }
    };
  dlqFilters(dlq.command('list').description('List dead letters, oldest first, with their reason and whether they were re-driven.'))
    .option('--after <id>', 'only dead letters after this id (the next page)', integerOption(0, Number.MAX_SAFE_INTEGER))
    .option('--limit <n>', 'dead letters per page', integerOption(1, 10_000), 50)
    .addOption(new Option('--format <format>', 'output format').choices(dlqFormats).default('table'))
    .action(dlqAction(async (_options: unknown, command: Command) => runDlqList(command.opts<DlqListOptions>(), io.stdout)));
  dlqConnection(dlq.command('show').description('Show one dead letter: the reason, the original record decoded, where it came from, its re-drives.'))
    .argument('<id>', 'dead letter id (from `dlq list`)')
    .option('--json', 'print as JSON')
    .action(dlqAction(async (id: string, _options: unknown, command: Command) => runDlqShow(id, command.opts<DlqShowOptions>(), io.stdout)));
  dlqFilters(
    dlq
      .command('export')
      .description('Write the ingestor dead letters a filter selects as NDJSON station records: fix them by hand, then `tollstream send` the file.'),
  )
    .option('--out <file>', 'file to write (default: stdout)')
    .action(dlqAction(async (_options: unknown, command: Command) => runDlqExport(command.opts<DlqExportOptions>(), io.stdout, io.stderr)));
  dlqFilters(
    dlq
      .command('redrive')
      .description(
        'Send dead letters through again once their cause is fixed: ingestor records through the station API (same validation; ' +
          'the transaction id keeps it exactly once), whole stream messages of other sources to the subject they came from. ' +
          'Every re-drive is recorded (who, when, outcome) and the dead letter marked, never deleted.',
      ),
  )
    .argument('[ids...]', 'dead letter ids (from `dlq list`); or use the filters, or --all')
    .option('--all', 'every dead letter not re-driven yet')
    .option('--dry-run', 'show what would be re-driven and how; change nothing')
    .addOption(new Option('--ingest-address <host:port>', 'ingestor gRPC address (env INGEST_ADDRESS)').default(io.env.INGEST_ADDRESS || '127.0.0.1:50051'))
    .addOption(
      new Option('--token-file <path>', 'file holding a station bearer token allowed for the stations re-driven (env STATION_TOKEN_FILE; else env STATION_TOKEN)').default(
        io.env.STATION_TOKEN_FILE || undefined,
      ),
    )
    .option('--batch-size <n>', 'records per SubmitTransactions call', integerOption(1, 5_000), 100)
    .option('--deadline-ms <ms>', 'deadline of each call', integerOption(1, 3_600_000), 30_000)
    .option('--max-attempts <n>', 'attempts per batch while the ingestor is unavailable', integerOption(1, 1_000), 8)
    .addOption(new Option('--operator <name>', 'who re-drives, recorded with every re-drive (env TOLLSTREAM_OPERATOR; default user@host)').default(io.env.TOLLSTREAM_OPERATOR || undefined))
    .option('--no-progress', 'no progress bar or progress lines')
    .option('--json', 'print the summary as JSON')
    .option('--max-reported <n>', 'dead letters listed in the summary', integerOption(0, 1_000_000), 50)
    .addHelpText(
      'after',
      `
Exit codes: 0 every selected dead letter re-driven (accepted, duplicate, republished) or re-driven
before; 2 completed, but some were rejected again, not re-drivable, or the ingestor stayed
unavailable; 1 fatal (bad filter, credentials, broker); 130 interrupted: run it again, what was
re-driven is marked and a repeated record is answered DUPLICATE.`,
    )
    .action(async (ids: string[], _options: unknown, command: Command) => {
      const options = command.opts<DlqRedriveOptions & { tokenFile?: string }>();
      const hasToken = options.tokenFile !== undefined || io.env.STATION_TOKEN !== undefined;
      const token = hasToken ? await resolveToken(options, io.env) : undefined;
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      if (io.handleSignals) {
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      }
      try {
        setExitCode(await runDlqRedrive(ids, { ...options, token }, { stdout: io.stdout, stderr: io.stderr, stderrIsTTY: io.stderrIsTTY, env: io.env, signal: controller.signal }));
      } catch (error) {
        if (error instanceof DlqCommandError) throw new FatalCliError(error.message);
        throw error;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  // Warehouse commands (docs/bi.md).
  const warehouseOptions = (command: Command): Command =>
    command
      .addOption(new Option('--clickhouse-url <url>', 'a ClickHouse server (env CLICKHOUSE_URL); else the embedded warehouse').default(io.env.CLICKHOUSE_URL || undefined))
      .addOption(
        new Option('--data-dir <dir>', 'data directory of the embedded warehouse (env WAREHOUSE_DATA_DIR)').default(
          io.env.WAREHOUSE_DATA_DIR || '.tollstream/warehouse',
        ),
      );

  addClientTlsOptions(
    warehouseOptions(
      program
        .command('sql')
      .description(
        'Run one read-only SQL statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) against the warehouse and print the result. ' +
          'Uses CLICKHOUSE_URL when set; else the query endpoint of the running warehouse-loader; else opens the embedded warehouse.',
      )
      .argument('<statement>', 'e.g. "SELECT * FROM tolls.traffic_per_station_slot ORDER BY slot_start DESC LIMIT 10"')
      .addOption(new Option('--format <format>', 'output format').choices(resultFormats).default('table'))
      .option('--max-rows <n>', 'rows to print at most', integerOption(1, 1_000_000), 1_000),
    ),
    io.env,
  ).action(async (statement: string, _options: unknown, command: Command) => {
    try {
      const options = command.opts<SqlCommandOptions & ClientTlsCommandOptions>();
      // The TLS options reach the loader's query endpoint (an https URL in its endpoint file).
      await runSql(statement, { ...options, endpointTls: clientTlsFromOptions(options) }, io.stdout, io.stderr);
    } catch (error) {
      if (error instanceof WarehouseCommandError || (error instanceof Error && error.name === 'StatementNotAllowedError')) {
        throw new FatalCliError(error.message);
      }
      throw error;
    }
  });

  warehouseOptions(
    program
      .command('migrate')
      .description('Apply the warehouse schema migrations (tables and BI views) to the configured warehouse; idempotent.')
      .addOption(new Option('--database <name>', 'database (env WAREHOUSE_DATABASE)').default(io.env.WAREHOUSE_DATABASE || 'tolls')),
  ).action(async (_options: unknown, command: Command) => {
    try {
      await runMigrate(command.opts<MigrateCommandOptions>(), io.stdout);
    } catch (error) {
      if (error instanceof WarehouseCommandError) throw new FatalCliError(error.message);
      throw error;
    }
  });

  // Traffic reference data (docs/traffic.md).
  const traffic = program.command('traffic').description('Reference thresholds of station traffic per slot (traffic-anomaly).');
  const trafficOptions = (command: Command): Command =>
    command
      .addOption(new Option('--nats-url <url>', 'NATS server(s), comma-separated (env NATS_URL)').default(io.env.NATS_URL || 'nats://127.0.0.1:4222'))
      .addOption(new Option('--bucket <name>', 'reference KV bucket (env TRAFFIC_REFERENCE_KV_BUCKET)').default(io.env.TRAFFIC_REFERENCE_KV_BUCKET || 'traffic-references'))
      .option('--json', 'print as JSON');
  const trafficAction =
    (run: () => Promise<void>) =>
    async (): Promise<void> => {
      try {
        await run();
      } catch (error) {
        if (error instanceof TrafficCommandError) throw new FatalCliError(error.message);
        throw error;
      }
    };
  trafficOptions(
    traffic
      .command('load')
      .description('Validate a reference file (CSV or JSON, see docs/traffic.md) and apply it; errors name the line and field and nothing is applied.')
      .argument('<file>', 'CSV (station_id,effective_from,time_zone,slot_minutes,weekday,slot_start,min,max) or JSON')
      .addOption(new Option('--format <format>', 'file format (default: by extension)').choices(['csv', 'json']))
      .option('--dry-run', 'show what would change; write nothing'),
  ).action((file: string, _options: unknown, command: Command) => trafficAction(() => runTrafficLoad(file, command.opts<TrafficReferenceCommandOptions>(), io.stdout))());
  warehouseOptions(
    traffic
      .command('propose')
      .description(
        'Propose reference thresholds from the warehouse history (median of the same slot of the week over the last weeks, times ratios) and write a reference file to review, then load.',
      )
      .requiredOption('--out <file>', 'reference CSV to write')
      .option('--weeks <n>', 'weeks of history', integerOption(1, 52), 4)
      .option('--min-ratio <r>', 'min = floor(ratio × median)', Number, 0.5)
      .option('--max-ratio <r>', 'max = ceil(ratio × median); 0 for no maximum', Number, 2)
      .option('--until <instant>', 'end of the history (default: start of today, UTC)', instantOption)
      .option('--effective-from <instant>', 'effective_from of the proposed version (default: --until)', instantOption)
      .addOption(new Option('--time-zones-file <file>', 'JSON {"stations": {"st-001": "Asia/Kolkata"}} (env STATION_TIME_ZONES_FILE)').default(io.env.STATION_TIME_ZONES_FILE || undefined))
      .addOption(new Option('--default-time-zone <zone>', 'zone of stations not in the file (env OPERATOR_TIME_ZONE)').default(io.env.OPERATOR_TIME_ZONE || 'UTC'))
      .addOption(new Option('--database <name>', 'database (env WAREHOUSE_DATABASE)').default(io.env.WAREHOUSE_DATABASE || 'tolls')),
  ).action((_options: unknown, command: Command) => trafficAction(() => runTrafficPropose(command.opts<TrafficProposeOptions>(), io.stdout))());
  trafficOptions(traffic.command('list').description('List stations with reference data and their versions.')).action((_options: unknown, command: Command) =>
    trafficAction(() => runTrafficList(command.opts<TrafficReferenceCommandOptions>(), io.stdout))(),
  );

  return program;
}

/** Runs the command line; resolves with the process exit code. Never prints the token. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const program = createProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.fatal;
    }
    if (error instanceof FatalCliError || error instanceof InputFileError || error instanceof CheckpointError || error instanceof ClientTlsError) {
      io.stderr.write(`error: ${error.message}\n`);
      return ExitCode.fatal;
    }
    if (error instanceof SendError || error instanceof RangeError) {
      io.stderr.write(`error: ${error.message}\n`);
      return ExitCode.fatal;
    }
    io.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return ExitCode.fatal;
  }
}
