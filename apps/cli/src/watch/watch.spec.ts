import * as grpc from '@grpc/grpc-js';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Alert, IngestServiceClient, Subjects, TrafficCondition, VehicleClass } from '@tollstream/contracts';
import { declareTopology, provisionTopology } from '@tollstream/messaging';
import { freePort, startIngestor, startNats, tempDir, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '../program';

interface WatchLine {
  services: Array<{ name: string; state: string; throughput: string; deadLetters: string }>;
  streams?: Array<{ stream: string; subjects: Record<string, number> }>;
  streamsError?: string;
  alerts: Array<{ alertId: string }>;
}

describe('tollstream watch (real nats-server and a real ingestor)', () => {
  const token = 'watch-spec-station-token-0123456789';
  let nats: NatsHandle;
  let ingestor: ServiceProcess;
  let removeDir: () => Promise<void>;
  let closedPort: number;

  beforeAll(async () => {
    nats = await startNats();
    const dir = await tempDir('watch-spec');
    removeDir = dir.remove;
    const credentialsFile = join(dir.path, 'stations.json');
    writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'plaza', token, stationIds: ['st-001'] }] }));
    ingestor = await startIngestor({ natsUrl: nats.url, credentialsFile });
    closedPort = await freePort();
  }, 90_000);

  afterAll(async () => {
    await ingestor?.stop();
    await nats?.stop();
    await removeDir?.();
  });

  const run = async (args: string[]) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const chunks: string[] = [];
    const errors: string[] = [];
    stdout.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
    stderr.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
    const code = await runCli(args, { stdout, stderr, env: {}, stderrIsTTY: false, handleSignals: false });
    return { code, out: chunks.join(''), err: errors.join('') };
  };

  const otherPorts = () =>
    ['simulator', 'windower', 'warehouse-loader', 'billing-threshold', 'traffic-anomaly', 'notifier'].map((name) => `${name}=${closedPort}`).join(',');

  it('shows the ingestor up with its rate and dead letters, the others down, the dead letters by source and the alerts', async () => {
    const nc = await connect({ servers: nats.url });
    await provisionTopology(await jetstreamManager(nc), declareTopology());
    const js = jetstream(nc);
    const alert = Alert.fromPartial({
      alertId: 'spending/acct-7/2026-11/v1',
      raisedAt: new Date(),
      spendingThresholdBreached: { accountId: 'acct-7', month: '2026-11', thresholdMinor: 1000, totalMinor: 1100, currency: 'USD' },
    });
    const trafficAlert = Alert.fromPartial({
      alertId: 'traffic/st-001/2026-11-23T17:00:00Z/below',
      raisedAt: new Date(),
      stationTraffic: { stationId: 'st-001', timeZone: 'UTC', slotStart: new Date('2026-11-23T17:00:00Z'), slotEnd: new Date('2026-11-23T17:30:00Z'), vehicleCount: 3, expectedMinimum: 100, condition: TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM },
    });
    // The traffic alert is older than three spending alerts: with --max-alerts 2 it must still show.
    await js.publish(Subjects.alert('traffic'), Alert.encode(trafficAlert).finish(), { msgID: trafficAlert.alertId });
    for (const account of ['acct-4', 'acct-5', 'acct-7']) {
      const spending = Alert.fromPartial({ ...alert, alertId: `spending/${account}/2026-11/v1`, spendingThresholdBreached: { ...alert.spendingThresholdBreached, accountId: account } });
      await js.publish(Subjects.alert('spending'), Alert.encode(spending).finish(), { msgID: spending.alertId });
    }
    await nc.close();

    // One accepted and one rejected record (unknown currency): the rejected one is dead-lettered.
    const client = new IngestServiceClient(`127.0.0.1:${ingestor.grpcPort}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    const record = (transactionId: string, currency: string) => ({
      transactionId, stationId: 'st-001', laneId: 'l1', tagId: 'tag-1', plate: 'ABC123', accountId: 'acct-7',
      vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, amountMinor: 275, currency, occurredAt: new Date(),
    });
    await new Promise<void>((resolve, reject) =>
      client.submitTransactions({ transactions: [record('tx-1', 'USD'), record('tx-2', 'ZZZ')] }, metadata, (error) => (error ? reject(error) : resolve())),
    );
    client.close();

    const result = await run(['watch', '--once', '--json', '--max-alerts', '2', '--nats-url', nats.url, '--ports', `ingestor=${ingestor.httpPort},${otherPorts()}`]);
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const reading = JSON.parse(result.out.trim().split('\n').at(-1) ?? '{}') as WatchLine;
    const ingestorRow = reading.services.find((service) => service.name === 'ingestor');
    expect(ingestorRow).toMatchObject({ state: 'up', throughput: '0 accepted/s', deadLetters: '1' });
    expect(reading.services.find((service) => service.name === 'windower')?.state).toBe('down');
    expect(reading.services.find((service) => service.name === 'simulator')?.state).toBe('not running');
    expect(reading.streams?.find((stream) => stream.stream === 'TOLL_DLQ')?.subjects).toEqual({ 'tolls.dlq.ingestor': 1 });
    expect(reading.alerts.map((recent) => recent.alertId).sort()).toEqual(['spending/acct-5/2026-11/v1', 'spending/acct-7/2026-11/v1', 'traffic/st-001/2026-11-23T17:00:00Z/below']);

    const screen = await run(['watch', '--once', '--nats-url', nats.url, '--ports', `ingestor=${ingestor.httpPort},${otherPorts()}`]);
    expect(screen.out).toMatch(/ingestor\s+up\s+0 accepted\/s/);
    expect(screen.out).toContain('spending  acct-7 passed 10.00 USD in 2026-11 (total 11.00 USD)');
    expect(screen.out).toContain('traffic   st-001 below minimum 17:00-17:30 UTC: 3 vehicles (expected at least 100)');
  }, 60_000);

  it('still shows the services when NATS cannot be reached, and says why the streams are missing', async () => {
    const result = await run(['watch', '--once', '--nats-url', `nats://127.0.0.1:${closedPort}`, '--ports', `ingestor=${ingestor.httpPort},${otherPorts()}`]);
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/ingestor\s+up/);
    expect(result.out).toContain(`cannot read the streams: NATS at nats://127.0.0.1:${closedPort}`);
  }, 60_000);

  it('rejects an unknown service or a bad port with a clear message and exit code 1', async () => {
    const unknown = await run(['watch', '--once', '--ports', 'billing=9467']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('unknown service "billing"');
    const badPort = await run(['watch', '--once', '--ports', 'ingestor=99999']);
    expect(badPort.code).toBe(1);
    expect(badPort.err).toContain('ingestor: expected a port 1-65535');
  });
});
