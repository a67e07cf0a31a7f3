import { faultSyntax, FaultSyntaxError, parseDuration, parseFaults, type TrafficPattern } from '@tollstream/simulator';
import { ClientTlsError, grpcClientCredentials } from '@tollstream/service-kit';
import { addClientTlsOptions, clientTlsFromOptions } from '@tollstream/station-sender';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { RunError, runSimulation } from './run';
import { writeScenario } from './scenario-files';

export interface SimulatorIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Stop cleanly on SIGINT/SIGTERM (the real process only). */
  handleSignals: boolean;
  /** Environment fallbacks of options (TLS_CA_FILE …); none when absent. */
  env?: NodeJS.ProcessEnv;
}

class FatalError extends Error {}

const integerOption =
  (min: number, max: number) =>
  (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) throw new InvalidArgumentError(`expected ${min} to ${max}, got ${parsed}`);
    return parsed;
  };

const rateOption = (value: string): number => {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError(`expected a positive number of records per second, got "${value}"`);
  return parsed;
};

const durationOption = (value: string): number => {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

const addressOption = (value: string): string => {
  if (!/^[^\s:]+:\d{1,5}$/.test(value.trim())) throw new InvalidArgumentError(`expected host:port, got "${value}"`);
  return value.trim();
};

const zoneList = (value: string): string[] => value.split(',').map((zone) => zone.trim()).filter((zone) => zone.length > 0);

const faultsOption = (value: string): string => {
  try {
    // Checked here for syntax; station ids are checked against the model when the run starts.
    parseFaults(value, 0);
  } catch (error) {
    if (error instanceof FaultSyntaxError) throw new InvalidArgumentError(error.message);
    throw error;
  }
  return value;
};

async function readToken(file: string, what: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch (error) {
    throw new FatalError(`cannot read the ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (token.length === 0) throw new FatalError(`the ${what} ${file} is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new FatalError(`the ${what} ${file} holds spaces or non-printable characters`);
  return token;
}

interface ModelOptions {
  seed: string;
  stations: number;
  accounts: number;
  timeZones?: string[];
}

interface RunOptions extends ModelOptions {
  tls?: boolean;
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsServerName?: string;
  ingestAddress: string;
  tokenFile?: string;
  rate: number;
  pattern: TrafficPattern;
  duration: number;
  maxRecords?: number;
  backfill: number;
  faults: string;
  batchSize: number;
  concurrency: number;
  httpPort?: number;
  accountService?: string;
  accountTokenFile?: string;
  progressInterval: number;
}

interface ScenarioOptions extends ModelOptions {
  out: string;
  tokenFile?: string;
  rate: number;
  pattern: TrafficPattern;
  effectiveFrom: string;
  slotMinutes: number;
}

const maxBackfillMs = 71 * 3_600_000;

function addModelOptions(command: Command): Command {
  return command
    .option('--seed <text>', 'same seed and options ⇒ same traffic', 'tollstream')
    .option('--stations <n>', 'number of stations (st-001 …)', integerOption(1, 10_000), 10)
    .option('--accounts <n>', 'number of customer accounts', integerOption(0, 10_000_000), 1_000)
    .option('--time-zones <zones>', 'IANA zones given to stations in turn (default: five US zones)', zoneList)
    .option('--rate <n>', 'average records per second over all stations', rateOption, 100)
    .addOption(new Option('--pattern <pattern>', 'realistic: shaped by local time of day and week; flat: constant (benchmarks)').choices(['realistic', 'flat']).default('realistic'));
}

export function createProgram(io: SimulatorIo, onSummary: (exitCode: number) => void): Command {
  const program = new Command('tollstream-simulator')
    .description('Realistic toll traffic for tollstream: stations, lanes, accounts, daily and weekly patterns, injected faults.')
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();

  const runCommand = addModelOptions(program.command('run', { isDefault: true }).description('Generate traffic and submit it through the ingest API like stations do (default command).'))
    .option('--ingest-address <host:port>', 'the ingestor gRPC address', addressOption, '127.0.0.1:50051')
    .option('--token-file <file>', 'file holding the station bearer token (never printed)')
    .option('--duration <seconds>', 'stop after this many seconds; 0 = until SIGINT/SIGTERM', integerOption(0, 365 * 86_400), 0)
    .option('--max-records <n>', 'stop after generating this many records', integerOption(1, Number.MAX_SAFE_INTEGER))
    .option('--backfill <duration>', 'first send this much event-time history (e.g. 30m, 2h) quickly, then continue live', durationOption, 0)
    .option('--faults <list>', `faults to inject: ${faultSyntax}`, faultsOption, '')
    .option('--batch-size <n>', 'records per submission at most', integerOption(1, 10_000), 500)
    .option('--concurrency <n>', 'submissions in flight', integerOption(1, 256), 4)
    .option('--http-port <port>', 'serve Prometheus /metrics on this port', integerOption(0, 65_535))
    .option('--account-service <host:port>', 'set every account threshold through the AccountService first', addressOption)
    .option('--account-token-file <file>', 'bearer token file for --account-service')
    .option('--progress-interval <seconds>', 'seconds between progress lines', integerOption(1, 3_600), 5);
  addClientTlsOptions(runCommand, io.env ?? {})
    .action(async (options: RunOptions) => {
      if (!options.tokenFile) throw new FatalError('--token-file is required: the station bearer token the ingestor knows');
      if (options.backfill > maxBackfillMs) throw new FatalError('--backfill must stay below the ingestor acceptance horizon (72h by default); at most 71h');
      if ((options.accountService === undefined) !== (options.accountTokenFile === undefined)) throw new FatalError('--account-service and --account-token-file go together');
      const token = await readToken(options.tokenFile, 'token file');
      const tls = clientTlsFromOptions(options);
      // A wrong CA or key path stops the run before any traffic is generated.
      grpcClientCredentials(tls);
      const accountService = options.accountService && options.accountTokenFile ? { address: options.accountService, token: await readToken(options.accountTokenFile, 'account token file') } : undefined;
      const controller = new AbortController();
      const stop = (signal: NodeJS.Signals) => {
        io.stderr.write(`${signal}: stopping after the batches in flight\n`);
        controller.abort();
      };
      if (io.handleSignals) {
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
      try {
        const summary = await runSimulation({
          ...options,
          token,
          durationS: options.duration,
          backfillMs: options.backfill,
          accountService,
          tls,
          progressIntervalMs: options.progressInterval * 1000,
          signal: controller.signal,
          writeLine: (line) => io.stdout.write(`${line}\n`),
        });
        onSummary(summary.unexpectedRejections > 0 ? 2 : 0);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  addModelOptions(program.command('scenario').description('Write the files a local run needs: ingestor credentials, station time zones, traffic reference bands, accounts.'))
    .requiredOption('--out <dir>', 'directory to write into')
    .option('--token-file <file>', 'station token to put in the credentials (default: derived from the seed, for local runs)')
    .option('--effective-from <instant>', 'effective_from of the traffic references', '2026-01-01T00:00:00Z')
    .option('--slot-minutes <n>', 'reference slot length', integerOption(1, 1_440), 30)
    .action(async (options: ScenarioOptions) => {
      if (Number.isNaN(Date.parse(options.effectiveFrom)) || !/(Z|[+-]\d{2}:?\d{2})$/i.test(options.effectiveFrom)) throw new FatalError('--effective-from: expected an ISO 8601 instant with offset, e.g. 2026-01-01T00:00:00Z');
      const token = options.tokenFile ? await readToken(options.tokenFile, 'token file') : undefined;
      const written = await writeScenario({ ...options, outDir: options.out, token });
      io.stdout.write(`${JSON.stringify({ event: 'scenario', dir: options.out, files: written })}\n`);
    });
  return program;
}

/** Runs the simulator command line; resolves with the exit code (0 ok, 1 usage or fatal error, 2 unexpected rejections). */
export async function runSimulatorCli(argv: readonly string[], io: SimulatorIo): Promise<number> {
  let exitCode = 0;
  const program = createProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 1;
    if (error instanceof FatalError || error instanceof RunError || error instanceof FaultSyntaxError || error instanceof RangeError || error instanceof ClientTlsError) {
      io.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    io.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}
