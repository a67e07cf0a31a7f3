/**
 * The README's start command (`npm start` = scripts/start-local.sh) on this machine: it starts
 * nats-server, the six services and the simulator, shows one reading of the live view and warehouse
 * queries, and stops everything it started. Run without a terminal (KEEP_RUNNING=0), on free ports.
 */
import { freePort, isPortFree, repositoryRoot, tempDir, type TempDirHandle } from '@tollstream/testing';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

let dir: TempDirHandle | undefined;
afterAll(async () => {
  await dir?.remove();
});

const portVariables = [
  'NATS_PORT',
  'INGEST_GRPC_PORT',
  'INGEST_HTTP_PORT',
  'WINDOWER_HTTP_PORT',
  'WAREHOUSE_HTTP_PORT',
  'BILLING_GRPC_PORT',
  'BILLING_HTTP_PORT',
  'TRAFFIC_GRPC_PORT',
  'TRAFFIC_HTTP_PORT',
  'NOTIFIER_GRPC_PORT',
  'NOTIFIER_HTTP_PORT',
  'SIMULATOR_HTTP_PORT',
] as const;

it('npm start runs the whole pipeline with simulated traffic, shows it, and stops cleanly', async () => {
  dir = await tempDir('start-local');
  const ports: Record<string, string> = {};
  for (const variable of portVariables) ports[variable] = String(await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...ports,
    TOLLSTREAM_DATA_DIR: dir.path,
    KEEP_RUNNING: '0',
    DEMO_SECONDS: '8',
    SIM_RATE: '200',
    SIM_ACCOUNTS: '2000',
    SIM_BACKFILL: '90s',
  };
  delete env['NATS_URL'];
  delete env['MONGODB_URI'];
  delete env['CLICKHOUSE_URL'];
  delete env['NATS_FSYNC'];
  const script = spawn('bash', [join(repositoryRoot, 'scripts', 'start-local.sh')], { cwd: repositoryRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  script.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  script.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => script.kill('SIGTERM'), 280_000);
  const code = await new Promise<number | null>((resolve) => script.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0) console.log(output.slice(-6_000));
  expect(code).toBe(0);

  // nats-server ran from the config the script wrote, with the local durability default (deploy/local/nats.json, ADR 0014).
  expect(output).toMatch(/Starting nats-server with JetStream on 127\.0\.0\.1:\d+ \(store: .*, fsync: interval\)/);
  // Every service answered the live view, and the simulator's history went in before the windower started.
  expect(output).toMatch(/History in: \d+ records accepted/);
  for (const service of ['simulator', 'ingestor', 'windower', 'warehouse-loader', 'billing-threshold', 'traffic-anomaly', 'notifier']) {
    expect(output).toMatch(new RegExp(`\\n${service}\\s+up\\s`));
  }
  // Malformed records were rejected with their field and dead-lettered.
  expect(output).toMatch(/tolls\.dlq\.ingestor\s+[1-9]/);
  // The warehouse answered, through the loader's query endpoint.
  expect(output).toMatch(/newest_ingested_at .*stored_rows/);
  expect(output).toContain('Stopped. Data kept in');
  // Nothing it started is left running.
  for (const variable of portVariables) expect(await isPortFree(Number(ports[variable]))).toBe(true);
}, 300_000);
