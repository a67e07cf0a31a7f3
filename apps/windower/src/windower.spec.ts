import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { StationTrafficBatch, Streams } from '@tollstream/contracts';
import {
  sendThroughIngestor,
  startIngestor,
  startNats,
  startWindower,
  tempDir,
  waitFor,
  type NatsHandle,
  type ServiceProcess,
  type TempDirHandle,
} from '@tollstream/testing';
import {
  bruteForceWindows,
  generateTraffic,
  metricValue,
  readWindowerOutput,
  spendAcrossPartitions,
  trafficWithoutRevisions,
  type GeneratedTraffic,
  type WindowerOutput,
} from './__fixtures__/toll-traffic';

const PARTITIONS = 8;
const SPEND_WINDOW_MS = 10_000;
const SLOT_MS = 30 * 60_000;
const TOKEN = 'windower-test-station-token-01';

// Event times lie in the past (so that 30-minute slots can close without waiting for them in real
// time); the windows' watermark follows the data, and the idle rule closes the last slots.
const traffic: GeneratedTraffic = generateTraffic({
  seed: 20261123,
  transactions: 200_000,
  stations: 40,
  accounts: 3_000,
  batchSize: 500,
  startMs: Math.floor(Date.now() / SLOT_MS) * SLOT_MS - 4 * SLOT_MS,
  spanMs: 2 * SLOT_MS,
  slotMs: SLOT_MS,
});

const windowerEnv = (dir: string): NodeJS.ProcessEnv => ({
  TOLL_TX_PARTITIONS: String(PARTITIONS),
  SPEND_WINDOW: `tumbling:${SPEND_WINDOW_MS}ms`,
  SPEND_OUT_OF_ORDERNESS: '1s',
  SPEND_ALLOWED_LATENESS: '30s',
  TRAFFIC_WINDOW: 'tumbling:30m',
  TRAFFIC_OUT_OF_ORDERNESS: '1s',
  TRAFFIC_ALLOWED_LATENESS: '10m',
  STATION_TIME_ZONES_FILE: join(dir, 'station-zones.json'),
  WINDOW_IDLE_TIMEOUT: '5s',
  WINDOWER_HEARTBEAT_INTERVAL: '1s',
  WINDOWER_CHECKPOINT_INTERVAL: '500ms',
  WINDOWER_LEASE_TTL: '3s',
  WINDOWER_LEASE_RENEW_INTERVAL: '1s',
  WINDOWER_MAX_RESULTS_PER_MESSAGE: '2000',
});

interface Pipeline {
  nats: NatsHandle;
  nc: NatsConnection;
  jsm: JetStreamManager;
  ingestor: ServiceProcess;
  dir: TempDirHandle;
  windowers: ServiceProcess[];
  close(): Promise<void>;
}

async function startPipeline(): Promise<Pipeline> {
  const nats = await startNats();
  const dir = await tempDir('windower');
  const credentialsFile = join(dir.path, 'stations.json');
  writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'test', token: TOKEN, stationIds: [...new Set(traffic.unique.map((t) => t.stationId))] }] }));
  writeFileSync(join(dir.path, 'station-zones.json'), JSON.stringify({ stations: traffic.stationZones }));
  const ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile, env: { TOLL_TX_PARTITIONS: String(PARTITIONS) } });
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  const pipeline: Pipeline = {
    nats,
    nc,
    jsm,
    ingestor,
    dir,
    windowers: [],
    close: async () => {
      await Promise.all(pipeline.windowers.map((windower) => windower.kill('SIGKILL')));
      await ingestor.kill('SIGKILL');
      await nc.close();
      await nats.stop();
      await dir.remove();
    },
  };
  return pipeline;
}

/** Waits until every partition's watermark passed the last slot: all windows are final. */
async function finalOutput(jsm: JetStreamManager, nc: NatsConnection): Promise<WindowerOutput> {
  await waitFor(
    async () => {
      for (let partition = 0; partition < PARTITIONS; partition++) {
        const last = await jsm.streams
          .getMessage(Streams.aggregates, { last_by_subj: `tolls.agg.traffic.${partition}` })
          .catch(() => undefined);
        if (!last) return false;
        if ((StationTrafficBatch.decode(last.data).watermark?.getTime() ?? 0) < traffic.lastSlotEndMs) return false;
      }
      return true;
    },
    { timeoutMs: 120_000, intervalMs: 500, description: 'every partition watermark past the last slot' },
  );
  return readWindowerOutput(nc);
}

function differences<V>(actual: Map<string, V>, expected: Map<string, V>): string[] {
  const problems: string[] = [];
  const show = (value: V | undefined) => JSON.stringify(value, (_key, v: unknown) => (v instanceof Map ? [...v].sort() : v));
  for (const [key, value] of expected) {
    if (show(actual.get(key)) !== show(value)) problems.push(`${key}: expected ${show(value)}, got ${show(actual.get(key))}`);
  }
  for (const key of actual.keys()) if (!expected.has(key)) problems.push(`${key}: not expected, got ${show(actual.get(key))}`);
  return problems;
}

/** The assertions every scenario shares: exact windows, no result twice, lateness as generated. */
function expectExactResults(output: WindowerOutput): void {
  expect(output.inconsistencies.slice(0, 10)).toEqual([]);
  const expected = bruteForceWindows(traffic, { spend: output.lateSpend, traffic: output.lateTraffic }, SPEND_WINDOW_MS, SLOT_MS);
  expect(differences(spendAcrossPartitions(output), expected.spend).slice(0, 10)).toEqual([]);
  expect(differences(trafficWithoutRevisions(output), expected.traffic).slice(0, 10)).toEqual([]);
  // Only records generated late are ever judged too late; the very late ones always are.
  const onTimeJudgedLate = [...output.lateSpend, ...output.lateTraffic].filter((key) => traffic.latenessOf.get(key) === 'on-time');
  expect(onTimeJudgedLate.slice(0, 10)).toEqual([]);
  const veryLate = [...traffic.latenessOf].filter(([, lateness]) => lateness === 'very-late').map(([key]) => key);
  const veryLateWithAccount = veryLate.filter((key) => traffic.unique.find((t) => `${t.stationId}/${t.transactionId}` === key)?.accountId);
  expect(veryLate.filter((key) => !output.lateTraffic.has(key))).toEqual([]);
  expect(veryLateWithAccount.filter((key) => !output.lateSpend.has(key))).toEqual([]);
  // The lateness paths were exercised: amendments exist, some records were too late for spend only.
  expect([...output.traffic.values()].some((window) => window.revision > 1)).toBe(true);
  expect([...output.spend.values()].some((window) => window.revision > 1)).toBe(true);
  expect(output.lateSpend.size).toBeGreaterThan(output.lateTraffic.size);
  // Every station slot in the Kathmandu zone starts at :15 or :45 UTC.
  const kathmandu = [...output.traffic].filter(([id]) => traffic.stationZones[id.split('/')[0]]);
  expect(kathmandu.length).toBeGreaterThan(0);
  for (const [id, window] of kathmandu) {
    expect(window.timeZone).toBe('Asia/Kathmandu');
    expect(new Date(Number(id.split('/')[1])).getUTCMinutes() % 30).toBe(15);
  }
}

describe('windower on a real nats-server, 200,000 transactions with duplicates, out-of-order and late records', () => {
  let pipeline: Pipeline | undefined;
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
  });

  it('produces exactly the brute-force windows', async () => {
    pipeline = await startPipeline();
    pipeline.windowers.push(await startWindower({ natsUrl: pipeline.nats.url, env: windowerEnv(pipeline.dir.path) }));
    const sent = await sendThroughIngestor(`127.0.0.1:${pipeline.ingestor.grpcPort}`, TOKEN, traffic.sends);
    expect(sent.accepted).toBe(traffic.unique.length);
    expect(sent.duplicate).toBeGreaterThan(0);
    const output = await finalOutput(pipeline.jsm, pipeline.nc);
    expectExactResults(output);
    expect(await metricValue(pipeline.windowers[0].httpPort, 'tollstream_windower_records_total')).toBe(traffic.unique.length);
    expect(output.messages).toBeLessThan(output.spend.size); // results are batched
  }, 240_000);

  it('stays exact while the windower is killed with SIGKILL five times mid-stream and restarted', async () => {
    pipeline = await startPipeline();
    const env = windowerEnv(pipeline.dir.path);
    const current = pipeline;
    current.windowers.push(await startWindower({ natsUrl: current.nats.url, env }));
    let done = false;
    const sending = sendThroughIngestor(`127.0.0.1:${current.ingestor.grpcPort}`, TOKEN, traffic.sends, { recordsPerSecond: 7_000 }).finally(() => {
      done = true;
    });
    const kills: number[] = [];
    // Fixed "random" moments, 0.9 to 1.5 s after each restart (a restart itself takes 1-2 s).
    const pauses = [1_200, 900, 1_500, 1_000, 1_300];
    for (const pause of pauses) {
      if (kills.length >= 5) break;
      await new Promise((resolve) => setTimeout(resolve, pause));
      const [windower] = current.windowers.splice(0, 1);
      await windower.kill('SIGKILL');
      kills.push(Date.now());
      current.windowers.push(await startWindower({ natsUrl: current.nats.url, env }));
    }
    expect(kills).toHaveLength(5);
    expect(done).toBe(false); // the kills happened while transactions were still arriving
    const sent = await sending;
    expect(sent.accepted).toBe(traffic.unique.length);
    expectExactResults(await finalOutput(current.jsm, current.nc));
  }, 300_000);

  it('with 3 instances shares the partitions, and a killed instance hands its partitions to the survivors', async () => {
    pipeline = await startPipeline();
    const env = windowerEnv(pipeline.dir.path);
    const current = pipeline;
    for (const name of ['a', 'b', 'c']) {
      current.windowers.push(await startWindower({ natsUrl: current.nats.url, env: { ...env, WINDOWER_INSTANCE_ID: `windower-${name}` } }));
    }
    const owned = () => Promise.all(current.windowers.map((w) => metricValue(w.httpPort, 'tollstream_windower_owned_partitions')));
    await waitFor(async () => {
      const counts = await owned();
      return counts.every((count) => count > 0) && counts.reduce((a, b) => a + b, 0) === PARTITIONS;
    }, { timeoutMs: 30_000, intervalMs: 250, description: 'the 8 partitions shared by 3 instances' });

    let sentBatches = 0;
    const sending = sendThroughIngestor(`127.0.0.1:${current.ingestor.grpcPort}`, TOKEN, traffic.sends, {
      recordsPerSecond: 15_000,
      onProgress: (batches) => (sentBatches = batches),
    });
    await waitFor(async () => sentBatches > traffic.sends.length * 0.4, { timeoutMs: 60_000, intervalMs: 100, description: '40% sent' });
    const [victim] = current.windowers.splice(1, 1);
    const victimPartitions = await metricValue(victim.httpPort, 'tollstream_windower_owned_partitions');
    expect(victimPartitions).toBeGreaterThan(0);
    await victim.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(async () => (await owned()).reduce((a, b) => a + b, 0) === PARTITIONS, {
      timeoutMs: 30_000,
      intervalMs: 100,
      description: 'the survivors own all partitions',
    });
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThan(15_000);
    expect(sentBatches).toBeLessThan(traffic.sends.length); // taken over mid-stream
    await sending;
    expectExactResults(await finalOutput(current.jsm, current.nc));
    console.log(`windower takeover after SIGKILL: ${takeoverMs} ms for ${victimPartitions} partitions (lease TTL 3 s)`);
  }, 300_000);
});
