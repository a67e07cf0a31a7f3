/**
 * Dead-letter re-drive through the whole pipeline: records the ingestor refused (a station its
 * credential did not list, a bad currency) are re-driven with `tollstream dlq redrive` (the CLI as its
 * own process) once the credential is fixed; the warehouse, the monthly spend and the spending alert
 * then reflect each fixed record exactly once, the still-wrong one nowhere, and a second re-drive
 * changes nothing.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VehicleClass, type TollTransaction } from '@tollstream/contracts';
import { repositoryRoot, waitFor } from '@tollstream/testing';
import { accountApi, notificationApi, readAlerts, sendBatches, startPipeline, warehouseTransactionIds, type Pipeline } from './pipeline';
import { monthOf, STATIONS } from './scenario';

let pipeline: Pipeline | undefined;
afterAll(async () => {
  await pipeline?.close();
}, 60_000);

function tollstream(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/cli/src/main.ts', ...args], { cwd: repositoryRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

it('re-driven dead letters reach the warehouse, billing and the alerts exactly once', async () => {
  const deadlineMs = Date.now() + 200_000;
  const running = await startPipeline('e2e-redrive');
  pipeline = running;
  await running.start('windower');
  const account = `acct-redrive-${process.pid}`;
  const knownStation = STATIONS[0].id;
  const newStation = 'st-redrive-new';
  const api = accountApi(running.address('billing-threshold'));
  await api.setThreshold(account, 1_000);

  const occurredAt = new Date(Date.now() - 20_000);
  const record = (id: string, stationId: string, amountMinor: number, currency = 'USD'): TollTransaction => ({
    transactionId: `tx-redrive-${id}`,
    stationId,
    laneId: 'L1',
    tagId: `TAG-${id}`,
    plate: '',
    accountId: account,
    vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
    amountMinor,
    currency,
    occurredAt,
  });
  const accepted = record('first', knownStation, 100);
  const denied = [1, 2, 3, 4, 5].map((n) => record(`new-${n}`, newStation, 300));
  const wrong = record('zzz', knownStation, 5_000, 'ZZZ');
  const sent = await sendBatches(() => running.address('ingestor'), [[accepted, ...denied, wrong]], { deadlineMs });
  expect(sent.accepted).toEqual(new Set([accepted.transactionId]));
  expect([...sent.rejected.values()].map((rejection) => rejection.field).sort()).toEqual(['currency', ...Array(5).fill('station_id')]);

  // The fix: the station credential lists the new station; the ingestor restarts with it.
  const credentialsFile = join(running.dir.path, 'stations.json');
  const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8')) as { stations: Array<{ token: string; stationIds: string[] }> };
  credentials.stations[0].stationIds.push(newStation);
  writeFileSync(credentialsFile, JSON.stringify(credentials));
  await running.restart('ingestor');

  const env = { NATS_URL: running.nats.url, INGEST_ADDRESS: running.address('ingestor'), STATION_TOKEN: credentials.stations[0].token, TOLLSTREAM_OPERATOR: 'e2e' };
  const first = await tollstream(['dlq', 'redrive', '--source', 'ingestor', '--json', '--no-progress'], env);
  expect(JSON.parse(first.stdout)).toMatchObject({ counts: { accepted: 5, duplicate: 0, 'rejected-again': 1 } });
  expect(first.code).toBe(2);

  const month = monthOf(occurredAt.getTime());
  const ours = new Set([accepted, ...denied].map((r) => `${r.stationId}/${r.transactionId}`));
  const check = async () => {
    const spend = (await api.monthlySpend(account, month)).spend;
    const warehouse = (await warehouseTransactionIds(running.address('warehouse-loader'))).filter((id) => id.includes('tx-redrive-'));
    const alerts = (await readAlerts(running.jsm)).filter((alert) => alert.spendingThresholdBreached?.accountId === account).map((alert) => alert.alertId);
    const inbox = notificationApi(running.address('notifier'));
    const notified = await inbox.alertIds(account).finally(() => inbox.close());
    return { total: spend?.total?.amountMinor, count: spend?.transactionCount, warehouse: warehouse.sort(), alerts, notified };
  };
  const expected = { total: 1_600, count: 6, warehouse: [...ours].sort(), alerts: [`spending/${account}/${month}/v1`], notified: [`spending/${account}/${month}/v1`] };
  let seen: Awaited<ReturnType<typeof check>> | undefined;
  await waitFor(
    async () => {
      seen = await check().catch(() => undefined);
      return JSON.stringify(seen) === JSON.stringify(expected);
    },
    { timeoutMs: 90_000, intervalMs: 1_000, description: 'spend, warehouse rows, alert and inbox of the re-driven records' },
  ).catch(() => undefined);
  expect(seen).toEqual(expected);

  // A second re-drive changes nothing, anywhere.
  const second = await tollstream(['dlq', 'redrive', '--source', 'ingestor', '--json', '--no-progress'], env);
  expect(JSON.parse(second.stdout)).toMatchObject({ counts: { accepted: 0, duplicate: 0, 'rejected-again': 0, 'already-redriven': 6 } });
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  expect(await check()).toEqual(expected);
  api.close();
}, 240_000);
