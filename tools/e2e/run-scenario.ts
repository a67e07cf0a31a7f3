/** Runs a scenario through a pipeline (optionally with crashes) and checks the exact golden results. */
import { DeadLetter, Streams, TollTransaction, TrafficCondition } from '@tollstream/contracts';
import { readDeadLetters, waitFor } from '@tollstream/testing';
import { accountApi, notificationApi, readAlerts, sendBatches, warehouseTransactionIds, type Pipeline, type SendOutcome, type ServiceName } from './pipeline';
import {
  ACCOUNTS,
  KNOWN_ACCOUNT,
  KNOWN_THRESHOLD,
  acceptedRecords,
  expectedSpend,
  expectedSpendingAlerts,
  expectedTrafficAlerts,
  materializeLive,
  referenceBands,
  thresholdsFor,
  type Scenario,
} from './scenario';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => process.stdout.write(`[e2e ${new Date().toISOString()}] ${message}\n`);

export interface RunReport {
  problems: string[];
  acceptedCount: number;
  crashes: Array<{ target: string; whileSending: boolean }>;
}

export async function runScenario(pipeline: Pipeline, scenario: Scenario, options: { crash: Array<ServiceName | 'nats-server'>; deadlineMs: number }): Promise<RunReport> {
  const problems: string[] = [];
  const crashes: RunReport['crashes'] = [];
  await pipeline.start('traffic-anomaly');
  const versions = await pipeline.loadReferences(referenceBands(scenario));
  log('five services ready; the windower starts after the backfill');

  // Live records get their event times when sending starts; thresholds need totals over everything,
  // so the live timing is fixed now (the sender never sends a record before its event time).
  const liveStart = Date.now() + 25_000;
  const live = materializeLive(scenario, liveStart);
  const accepted = acceptedRecords(scenario, live);
  const spend = expectedSpend(accepted);
  const thresholds = thresholdsFor(spend);
  const api = accountApi(pipeline.address('billing-threshold'));
  const effectiveMonth = new Map<string, string>();
  for (const [account, amount] of thresholds) effectiveMonth.set(account, (await api.setThreshold(account, amount)).threshold?.effectiveFromMonth ?? '');
  api.close();
  const spendingAlerts = expectedSpendingAlerts(spend, thresholds, effectiveMonth);
  const trafficAlerts = expectedTrafficAlerts(scenario, accepted);
  const trafficIds = new Set(trafficAlerts.map((a) => `traffic/${a.stationId}/${scenario.slotStartMs}/${a.condition}/${versions.get(a.stationId) ?? '?'}`));

  // Backfill (with the evaluated traffic slot and the malformed records), then wait for the traffic alerts.
  const ingest = () => pipeline.address('ingestor');
  const outcome: SendOutcome = await sendBatches(ingest, scenario.backfill, { deadlineMs: options.deadlineMs });
  log(`backfill sent: ${outcome.accepted.size} accepted, ${outcome.duplicate} duplicates, ${outcome.rejected.size} rejected`);
  // Started now, the windower finds the backfill first in TOLL_TX: event times drive its watermark.
  // (Started earlier, its heartbeats on idle partitions would let the watermark follow the clock and
  // the whole backfill would arrive late: amendments instead of the slot's first evaluation.)
  await pipeline.start('windower');
  log('windower ready');
  await waitFor(async () => (await readAlerts(pipeline.jsm)).filter((a) => a.stationTraffic).length >= trafficIds.size, {
    timeoutMs: 60_000,
    intervalMs: 500,
    description: `the ${trafficIds.size} traffic alerts of the evaluated slot`,
  }).catch((error: unknown) => problems.push(String(error)));

  // Live part, rate-limited; with crashes: each service SIGKILLed and restarted in turn, then nats-server restarted.
  const batchDue = (index: number) => liveStart + Math.max(0, ...live[index].map((r) => (r.occurredAt?.getTime() ?? 0) - liveStart));
  let sendingDone = false;
  const sending = sendBatches(ingest, live, { dueAt: batchDue, deadlineMs: options.deadlineMs }, outcome).finally(() => {
    sendingDone = true;
  });
  if (options.crash.length > 0) {
    await sleep(Math.max(0, liveStart - Date.now()) + 3_000);
    for (const target of options.crash) {
      const whileSending = !sendingDone;
      const started = Date.now();
      if (target === 'nats-server') await pipeline.nats.restart();
      else await pipeline.restart(target);
      crashes.push({ target, whileSending });
      log(`${target === 'nats-server' ? 'restarted' : 'SIGKILLed and restarted'} ${target} in ${Date.now() - started} ms (sending still running: ${whileSending})`);
      await sleep(2_000);
    }
  }
  await sending.catch((error: unknown) => {
    log(`sending failed: ${String(error)}\n${pipeline.diagnostics(40)}`);
    throw error;
  });
  log(`resends: ${JSON.stringify([...outcome.retries])}`);
  log(`live part sent: ${outcome.accepted.size} accepted in total, ${outcome.duplicate} duplicates, ${outcome.storedByLostAnswer.size} stored by calls whose answer was lost`);

  // The ingestor's answers: exactly the valid records accepted (once), exactly the malformed ones rejected for their field.
  // A record stored by a call whose answer a crash lost is answered DUPLICATE on the resend: stored once too.
  const acceptedIds = new Set(accepted.map((r) => r.transactionId));
  const storedOnce = new Set([...outcome.accepted, ...outcome.storedByLostAnswer]);
  if (storedOnce.size !== acceptedIds.size || [...acceptedIds].some((id) => !storedOnce.has(id))) {
    problems.push(`ingestor accepted ${outcome.accepted.size} records (and ${outcome.storedByLostAnswer.size} more by calls whose answer was lost), expected ${acceptedIds.size}`);
  }
  for (const bad of scenario.malformed) {
    const rejection = outcome.rejected.get(bad.record.transactionId);
    if (rejection?.field !== bad.field) problems.push(`${bad.record.transactionId}: rejected for ${rejection?.field}, expected ${bad.field}`);
  }
  if (outcome.rejected.size !== scenario.malformed.length) problems.push(`${outcome.rejected.size} rejections, expected ${scenario.malformed.length}`);

  // Monthly spend per account, exactly.
  let spendProblems: string[] = [];
  await waitFor(
    async () => {
      const client = accountApi(pipeline.address('billing-threshold'));
      try {
        spendProblems = [];
        for (const [key, expected] of spend) {
          const [account, month] = key.split('/');
          const { spend: got } = await client.monthlySpend(account, month);
          if (got?.total?.amountMinor !== expected.totalMinor || got.transactionCount !== expected.count) {
            spendProblems.push(`${key}: expected ${expected.totalMinor} (${expected.count} tx), got ${got?.total?.amountMinor} (${got?.transactionCount} tx)`);
          }
        }
      } finally {
        client.close();
      }
      return spendProblems.length === 0;
    },
    { timeoutMs: 90_000, intervalMs: 1_000, description: 'monthly spend of every account' },
  ).catch(() => undefined);
  problems.push(...spendProblems.slice(0, 10));

  // Warehouse: exactly the accepted transactions.
  const expectedWarehouse = accepted.map((r) => `${r.stationId}/${r.transactionId}`).sort();
  let stored: string[] = [];
  const storedIsExpected = () => stored.length === expectedWarehouse.length && stored.every((id, i) => id === expectedWarehouse[i]);
  // Paging while the loader still inserts can read one row twice and skip another: read again until
  // a read is exactly the expected set, or report what the last read saw.
  await waitFor(
    async () => {
      stored = (await warehouseTransactionIds(pipeline.address('warehouse-loader')).catch(() => [])).sort();
      return storedIsExpected();
    },
    { timeoutMs: 60_000, intervalMs: 1_000, description: 'exactly the accepted transactions in the warehouse' },
  ).catch(() => undefined);
  if (!storedIsExpected()) {
    const storedSet = new Set(stored);
    const expectedSet = new Set(expectedWarehouse);
    problems.push(
      `warehouse: ${stored.length} rows, expected ${expectedWarehouse.length}; missing ${expectedWarehouse.filter((id) => !storedSet.has(id)).slice(0, 5).join(', ')}; unexpected ${stored.filter((id) => !expectedSet.has(id)).slice(0, 5).join(', ')}`,
    );
  }

  // Alerts: exactly the expected ids, none twice; then the notifier's inboxes.
  const expectedAlertIds = [...spendingAlerts, ...trafficIds].sort();
  await waitFor(async () => (await readAlerts(pipeline.jsm)).length >= expectedAlertIds.length, { timeoutMs: 30_000, intervalMs: 500, description: 'every expected alert' }).catch(
    () => undefined,
  );
  await sleep(3_000); // anything extra (a repeated alert) would show now
  const alerts = await readAlerts(pipeline.jsm);
  const alertIds = alerts.map((a) => a.alertId).sort();
  if (JSON.stringify(alertIds) !== JSON.stringify(expectedAlertIds)) {
    problems.push(`alerts on ${Streams.alerts}: got ${JSON.stringify(alertIds)}, expected ${JSON.stringify(expectedAlertIds)}`);
  }
  for (const alert of alerts) {
    const traffic = alert.stationTraffic;
    if (traffic) {
      const expected = trafficAlerts.find((a) => a.stationId === traffic.stationId);
      if (traffic.vehicleCount !== expected?.count || TrafficCondition[traffic.condition] !== `TRAFFIC_CONDITION_${expected.condition}` || traffic.slotStart?.getTime() !== scenario.slotStartMs) {
        problems.push(`traffic alert ${alert.alertId}: count ${traffic.vehicleCount}, condition ${TrafficCondition[traffic.condition]}; expected ${JSON.stringify(expected)}`);
      }
    }
    const breach = alert.spendingThresholdBreached;
    if (breach?.accountId === KNOWN_ACCOUNT && breach.totalMinor !== KNOWN_THRESHOLD) {
      problems.push(`${KNOWN_ACCOUNT} crossed at total ${breach.totalMinor}, expected exactly at the 3rd record (${KNOWN_THRESHOLD})`);
    }
    if (breach && (breach.totalMinor < breach.thresholdMinor || breach.thresholdMinor !== thresholds.get(breach.accountId))) {
      problems.push(`spending alert ${alert.alertId}: total ${breach.totalMinor}, threshold ${breach.thresholdMinor}`);
    }
  }
  const inbox = notificationApi(pipeline.address('notifier'));
  try {
    let inboxProblems: string[] = [];
    await waitFor(
      async () => {
        inboxProblems = [];
        for (const account of [...ACCOUNTS, KNOWN_ACCOUNT]) {
          const got = (await inbox.alertIds(account)).filter((id) => id.startsWith('spending/')).sort();
          const want = [...spendingAlerts].filter((id) => id.startsWith(`spending/${account}/`)).sort();
          if (JSON.stringify(got) !== JSON.stringify(want)) inboxProblems.push(`inbox ${account}: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
        }
        return inboxProblems.length === 0;
      },
      { timeoutMs: 30_000, intervalMs: 1_000, description: 'every inbox' },
    ).catch(() => undefined);
    problems.push(...inboxProblems.slice(0, 10));
  } finally {
    inbox.close();
  }

  // Dead letters: one per malformed record, with its reason.
  const letters: DeadLetter[] = await readDeadLetters(pipeline.jsm);
  const fromIngestor = letters.filter((l) => l.source === 'ingestor');
  const got = fromIngestor.map((l) => `${TollTransaction.decode(l.original).transactionId} ${l.reasonCode} ${l.reason.split(':')[0]}`).sort();
  const want = scenario.malformed.map((m) => `${m.record.transactionId} ${m.reasonCode} ${m.field}`).sort();
  if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`dead letters: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  if (letters.length !== fromIngestor.length) problems.push(`unexpected dead letters from ${[...new Set(letters.filter((l) => l.source !== 'ingestor').map((l) => `${l.source}: ${l.reason}`))].slice(0, 5).join('; ')}`);

  if (problems.length > 0) log(`service output:\n${pipeline.diagnostics()}`);
  log(`expected: ${accepted.length} transactions, ${spend.size} account-months, ${spendingAlerts.size} spending alerts, ${trafficIds.size} traffic alerts; problems: ${problems.length}`);
  if (spendingAlerts.size < 10 || trafficIds.size !== 3) problems.push(`scenario too weak: ${spendingAlerts.size} spending alerts, ${trafficIds.size} traffic alerts`);
  return { problems, acceptedCount: accepted.length, crashes };
}
