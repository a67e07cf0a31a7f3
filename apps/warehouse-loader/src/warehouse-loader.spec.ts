import { Alert, Streams, Subjects, TrafficCondition, TransactionBatch, VehicleClass, CustomerSpendBatch, StationTrafficBatch } from '@tollstream/contracts';
import { aTollTransaction, readDeadLetters, startNats, tempDir, waitFor, type NatsHandle, type ServiceProcess, type TempDirHandle } from '@tollstream/testing';
import {
  connectBroker,
  publishHeartbeat,
  publishTransactions,
  rowsOf,
  scalar,
  startLoader,
  waitUntilDrained,
  type Broker,
} from './__fixtures__/loader';

const transactions = (count: number, prefix: string, base = Date.parse('2026-11-22T10:00:00Z')) =>
  Array.from({ length: count }, (_, index) =>
    aTollTransaction({
      transactionId: `${prefix}-${index}`,
      stationId: `st-${String(index % 7).padStart(3, '0')}`,
      accountId: `acct-${index % 13}`,
      amountMinor: 100 + (index % 50),
      occurredAt: new Date(base + index * 1_000),
    }),
  );

async function metric(loader: ServiceProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${loader.httpPort}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('warehouse-loader: exactly once on real NATS and the warehouse', () => {
  let nats: NatsHandle;
  let broker: Broker;
  let data: TempDirHandle;
  let loader: ServiceProcess | undefined;
  const env = () => ({ NATS_URL: nats.url, WAREHOUSE_DATA_DIR: data.path, WAREHOUSE_DATABASE: 'tolls_exactly_once', WAREHOUSE_CONSUMER_PREFIX: 'wl-once' });
  const N = 6_000;
  const firstWave = transactions(N, 'tx');
  let storedStreamRows = 0;

  beforeAll(async () => {
    nats = await startNats();
    broker = await connectBroker(nats.url);
    data = await tempDir('warehouse-once');
  }, 60_000);

  afterAll(async () => {
    await loader?.stop();
    await broker?.nc.close();
    await nats?.stop();
    await data?.remove();
  });

  const invariants = async () => ({
    unique: await scalar(data.path, 'SELECT count() FROM tolls_exactly_once.transactions_unique'),
    // Every row of every stream message stored once: no (stream_sequence, transaction) twice in the raw table.
    rawDuplicates: await scalar(
      data.path,
      'SELECT count() - uniqExact(stream_sequence, station_id, transaction_id) FROM tolls_exactly_once.transactions',
    ),
  });

  it('survives a SIGKILL between the confirmed insert and the ack: N in, exactly N rows, no row stored twice', async () => {
    loader = await startLoader({ ...env(), WAREHOUSE_LOADER_CRASH_AFTER_INSERT: '1', WAREHOUSE_BATCH_MAX_ROWS: '2000' });
    const crashed = loader;
    // Duplicates in the input: the same append retried (same Nats-Msg-Id, absorbed by the broker) and
    // 500 transactions stored a second time in other messages (what a replayed producer would do).
    await publishTransactions(broker.js, firstWave, { batchPrefix: 'wave1' });
    await publishTransactions(broker.js, firstWave, { batchPrefix: 'wave1' });
    await publishTransactions(broker.js, firstWave.slice(0, 500), { batchPrefix: 'resent' });
    await publishHeartbeat(broker.js, 0, 'a');
    storedStreamRows = N + 500;

    expect(await crashed.process.exited).toBeNull();
    expect(crashed.process.exitSignal()).toBe('SIGKILL');
    expect(crashed.process.output()).toMatch(/killing this process after a confirmed insert/);

    loader = await startLoader(env());
    await waitUntilDrained(broker.jsm, Streams.transactions, 'wl-once-tx');
    expect(await invariants()).toEqual({ unique: N, rawDuplicates: 0 });
    // The batch whose ack was lost came again and was recognised as stored.
    expect(await metric(loader, 'tollstream_warehouse_already_loaded_rows_total')).toBeGreaterThan(0);
    expect(await scalar(data.path, 'SELECT sum(amount_minor) FROM tolls_exactly_once.transactions_unique')).toBe(
      firstWave.reduce((sum, tx) => sum + tx.amountMinor, 0),
    );
  }, 120_000);

  it('dead-letters poison messages and invalid records with the reason, and keeps loading', async () => {
    await broker.js.publish(Subjects.transactionPartition(1), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), { msgID: 'poison-1' });
    const broken = TransactionBatch.encode({
      batchId: 'broken-1',
      transactions: [
        { transaction: undefined, ingestedAt: new Date(), partition: 1 },
        { transaction: aTollTransaction({ transactionId: 'after-poison', stationId: 'st-100' }), ingestedAt: new Date(), partition: 1 },
      ],
    }).finish();
    await broker.js.publish(Subjects.transactionPartition(1), broken, { msgID: 'broken-1' });
    await waitFor(async () => (await scalar(data.path, "SELECT count() FROM tolls_exactly_once.transactions_unique WHERE transaction_id = 'after-poison'")) === 1, {
      timeoutMs: 30_000,
    });
    const letters = await readDeadLetters(broker.jsm, Subjects.deadLetter('warehouse-loader'));
    expect(letters.map((letter) => letter.reasonCode).sort()).toEqual(['INVALID_RECORD', 'UNDECODABLE']);
    expect(letters.find((letter) => letter.reasonCode === 'UNDECODABLE')?.reason).toMatch(/cannot decode tolls\.stream\.v1\.TransactionBatch/);
    expect(letters.every((letter) => letter.source === 'warehouse-loader' && letter.originalSubject === 'tolls.tx.1')).toBe(true);
    // The whole message keeps its id (a re-drive could dedupe by it); one record of a batch does not.
    expect(letters.map((letter) => [letter.reasonCode, letter.originalMsgId]).sort()).toEqual([['INVALID_RECORD', ''], ['UNDECODABLE', 'poison-1']]);
    expect(await invariants()).toEqual({ unique: N + 1, rawDuplicates: 0 });
  }, 60_000);

  it('absorbs a full replay of the stream from the start (consumer deleted and recreated)', async () => {
    await loader?.stop();
    await broker.jsm.consumers.delete(Streams.transactions, 'wl-once-tx');
    loader = await startLoader(env());
    await waitUntilDrained(broker.jsm, Streams.transactions, 'wl-once-tx');
    expect(await invariants()).toEqual({ unique: N + 1, rawDuplicates: 0 });
    expect(await metric(loader, 'tollstream_warehouse_already_loaded_rows_total')).toBeGreaterThanOrEqual(storedStreamRows);

    // And new data still flows after the replay.
    await publishTransactions(broker.js, transactions(1_000, 'wave2'), { batchPrefix: 'wave2' });
    await waitUntilDrained(broker.jsm, Streams.transactions, 'wl-once-tx');
    expect(await invariants()).toEqual({ unique: N + 1 + 1_000, rawDuplicates: 0 });
    expect(await metric(loader, 'tollstream_warehouse_rows_inserted_total')).toBeGreaterThanOrEqual(1_000);
  }, 120_000);
});

describe('warehouse-loader: BI views over a known input', () => {
  let nats: NatsHandle;
  let broker: Broker;
  let data: TempDirHandle;
  let loader: ServiceProcess;
  const db = 'tolls_views';

  beforeAll(async () => {
    nats = await startNats();
    broker = await connectBroker(nats.url);
    data = await tempDir('warehouse-views');
    loader = await startLoader({ NATS_URL: nats.url, WAREHOUSE_DATA_DIR: data.path, WAREHOUSE_DATABASE: db });
  }, 60_000);

  afterAll(async () => {
    await loader?.stop();
    await broker?.nc.close();
    await nats?.stop();
    await data?.remove();
  });

  it('traffic per station per 30-minute slot, revenue per station hour and class, monthly spend, freshness', async () => {
    const at = (iso: string) => new Date(iso);
    const known = [
      aTollTransaction({ transactionId: 'k1', stationId: 'st-A', accountId: 'acct-1', amountMinor: 250, vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, occurredAt: at('2026-11-22T14:05:00Z') }),
      aTollTransaction({ transactionId: 'k2', stationId: 'st-A', accountId: 'acct-1', amountMinor: 250, vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, occurredAt: at('2026-11-22T14:29:59Z') }),
      aTollTransaction({ transactionId: 'k3', stationId: 'st-A', accountId: 'acct-2', amountMinor: 900, vehicleClass: VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE, occurredAt: at('2026-11-22T14:30:00Z') }),
      aTollTransaction({ transactionId: 'k4', stationId: 'st-B', accountId: 'acct-1', amountMinor: 100, vehicleClass: VehicleClass.VEHICLE_CLASS_MOTORCYCLE, occurredAt: at('2026-12-01T00:10:00Z') }),
      aTollTransaction({ transactionId: 'k5', stationId: 'st-B', accountId: '', amountMinor: 400, vehicleClass: VehicleClass.VEHICLE_CLASS_BUS, occurredAt: at('2026-12-01T00:20:00Z') }),
    ];
    await publishTransactions(broker.js, known, { batchPrefix: 'known', perMessage: 2 });
    await publishTransactions(broker.js, known.slice(0, 2), { batchPrefix: 'known-again' }); // duplicates
    await waitUntilDrained(broker.jsm, Streams.transactions, 'warehouse-loader-tx');

    expect(await rowsOf(data.path, `SELECT station_id, toString(slot_start) AS slot, vehicles, cars, trucks, motorcycles, buses FROM ${db}.traffic_per_station_slot ORDER BY station_id, slot`)).toEqual([
      { station_id: 'st-A', slot: '2026-11-22 14:00:00', vehicles: 2, cars: 2, trucks: 0, motorcycles: 0, buses: 0 },
      { station_id: 'st-A', slot: '2026-11-22 14:30:00', vehicles: 1, cars: 0, trucks: 1, motorcycles: 0, buses: 0 },
      { station_id: 'st-B', slot: '2026-12-01 00:00:00', vehicles: 2, cars: 0, trucks: 0, motorcycles: 1, buses: 1 },
    ]);
    expect(await rowsOf(data.path, `SELECT station_id, toString(hour_start) AS hour, vehicle_class, transactions, revenue_minor FROM ${db}.revenue_per_station_hour ORDER BY station_id, hour, vehicle_class`)).toEqual([
      { station_id: 'st-A', hour: '2026-11-22 14:00:00', vehicle_class: 'CAR', transactions: 2, revenue_minor: 500 },
      { station_id: 'st-A', hour: '2026-11-22 14:00:00', vehicle_class: 'TRUCK_3_PLUS_AXLE', transactions: 1, revenue_minor: 900 },
      { station_id: 'st-B', hour: '2026-12-01 00:00:00', vehicle_class: 'BUS', transactions: 1, revenue_minor: 400 },
      { station_id: 'st-B', hour: '2026-12-01 00:00:00', vehicle_class: 'MOTORCYCLE', transactions: 1, revenue_minor: 100 },
    ]);
    expect(await rowsOf(data.path, `SELECT account_id, toString(month) AS month, transactions, spend_minor FROM ${db}.monthly_spend_per_account ORDER BY account_id, month`)).toEqual([
      { account_id: 'acct-1', month: '2026-11-01', transactions: 2, spend_minor: 500 },
      { account_id: 'acct-1', month: '2026-12-01', transactions: 1, spend_minor: 100 },
      { account_id: 'acct-2', month: '2026-11-01', transactions: 1, spend_minor: 900 },
    ]);
    const [fresh] = await rowsOf(data.path, `SELECT age_seconds, stored_rows FROM ${db}.freshness`);
    expect(fresh?.['age_seconds']).toBeGreaterThanOrEqual(0);
    expect(fresh?.['age_seconds']).toBeLessThan(60);
  }, 60_000);

  it('window results: the latest revision replaces earlier ones; spend is summed over source partitions', async () => {
    const start = new Date('2026-11-22T14:00:00Z');
    const end = new Date('2026-11-22T14:10:00Z');
    const spend = (partition: number, revision: number, amountMinor: number, count: number) => ({
      resultId: `spend:acct-1:USD:${partition}:${start.toISOString()}:r${revision}`,
      accountId: 'acct-1',
      currency: 'USD',
      windowStart: start,
      windowEnd: end,
      amountMinor,
      transactionCount: count,
      revision,
      sourcePartition: partition,
      lastOccurredAt: new Date('2026-11-22T14:09:00Z'),
    });
    const publishSpend = (batchId: string, windows: ReturnType<typeof spend>[]) =>
      broker.js.publish(Subjects.customerSpendShard(0), CustomerSpendBatch.encode({ batchId, sourcePartition: windows[0].sourcePartition, inputSequence: 1, chunk: 0, finalBefore: undefined, watermark: end, windows, lateTransactions: [] }).finish(), { msgID: batchId });
    await publishSpend('s1', [spend(0, 1, 500, 2)]);
    await publishSpend('s2', [spend(1, 1, 300, 1)]);
    await publishSpend('s3', [spend(0, 2, 750, 3)]); // amendment by a late record
    await publishSpend('s1-replayed', [spend(0, 1, 500, 2)]); // an old revision replayed: must not win
    // A window time before 2001 is not the fast path's (spend-window-tsv.ts): its rows come as JSON,
    // inserted next to the TabSeparated ones.
    await publishSpend('s4-old-clock', [{ ...spend(3, 1, 20, 1), accountId: 'acct-2', lastOccurredAt: new Date('1999-12-31T23:59:59.5Z') }]);
    const traffic = (revision: number, vehicleCount: number) => ({
      resultId: `traffic:st-A:${start.toISOString()}:r${revision}`,
      stationId: 'st-A',
      windowStart: start,
      windowEnd: new Date('2026-11-22T14:30:00Z'),
      timeZone: 'Europe/Paris',
      vehicleCount,
      countsByClass: [{ vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, vehicleCount }],
      revision,
      sourcePartition: 2,
    });
    for (const [batchId, revision, count] of [['t1', 1, 40], ['t2', 2, 41]] as const) {
      await broker.js.publish(Subjects.stationTrafficPartition(2), StationTrafficBatch.encode({ batchId, sourcePartition: 2, inputSequence: 9, watermark: end, windows: [traffic(revision, count)] }).finish(), { msgID: batchId });
    }
    // A watermark-only message (no windows) and a too-late record are not window rows.
    await broker.js.publish(Subjects.stationTrafficPartition(2), StationTrafficBatch.encode({ batchId: 't-wm', sourcePartition: 2, inputSequence: 10, watermark: end, windows: [] }).finish());
    await broker.js.publish('tolls.agg.late.spend.2', TransactionBatch.encode({ batchId: 'late', transactions: [] }).finish());
    await waitUntilDrained(broker.jsm, Streams.aggregates, 'warehouse-loader-agg');

    expect(await rowsOf(data.path, `SELECT source_partition, revision, amount_minor, transaction_count FROM ${db}.spend_windows_latest WHERE account_id = 'acct-1' ORDER BY source_partition`)).toEqual([
      { source_partition: 0, revision: 2, amount_minor: 750, transaction_count: 3 },
      { source_partition: 1, revision: 1, amount_minor: 300, transaction_count: 1 },
    ]);
    expect(await rowsOf(data.path, `SELECT account_id, amount_minor, transactions FROM ${db}.account_spend_per_window ORDER BY account_id`)).toEqual([
      { account_id: 'acct-1', amount_minor: 1050, transactions: 4 },
      { account_id: 'acct-2', amount_minor: 20, transactions: 1 },
    ]);
    expect(await rowsOf(data.path, `SELECT toString(last_occurred_at) AS last FROM ${db}.spend_windows_latest WHERE account_id = 'acct-2'`)).toEqual([
      { last: '1999-12-31 23:59:59.500' },
    ]);
    expect(await rowsOf(data.path, `SELECT station_id, revision, vehicle_count, counts_by_class['CAR'] AS cars FROM ${db}.traffic_windows_latest`)).toEqual([
      { station_id: 'st-A', revision: 2, vehicle_count: 41, cars: 41 },
    ]);
  }, 60_000);

  it('alerts: one row per alert_id, spending and traffic views', async () => {
    const spending: Alert = {
      alertId: 'spend:acct-1:2026-11:5000',
      raisedAt: new Date('2026-11-22T14:10:01Z'),
      spendingThresholdBreached: {
        accountId: 'acct-1', month: '2026-11', timeZone: 'Europe/Paris', thresholdMinor: 5000, totalMinor: 5100, currency: 'EUR', breachedAt: new Date('2026-11-22T14:09:00Z'),
      },
      stationTraffic: undefined,
    };
    const traffic: Alert = {
      alertId: 'traffic:st-A:2026-11-22T14:00',
      raisedAt: new Date('2026-11-22T14:30:05Z'),
      spendingThresholdBreached: undefined,
      stationTraffic: {
        stationId: 'st-A', slotStart: new Date('2026-11-22T14:00:00Z'), slotEnd: new Date('2026-11-22T14:30:00Z'), timeZone: 'Europe/Paris',
        condition: TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM, vehicleCount: 41, expectedMinimum: 100, expectedMaximum: 0, referenceVersion: 'ref-7',
      },
    };
    await broker.js.publish(Subjects.alert('spending'), Alert.encode(spending).finish(), { msgID: spending.alertId });
    await broker.js.publish(Subjects.alert('traffic'), Alert.encode(traffic).finish(), { msgID: traffic.alertId });
    // Published again without a message id (a replaying producer after the broker's duplicate window).
    await broker.js.publish(Subjects.alert('spending'), Alert.encode(spending).finish());
    await broker.js.publish(Subjects.alert('traffic'), new Uint8Array([0xff, 0xff, 0xff]));
    await waitUntilDrained(broker.jsm, Streams.alerts, 'warehouse-loader-alerts');

    expect(await rowsOf(data.path, `SELECT alert_id, account_id, month, threshold_minor, total_minor, currency FROM ${db}.spending_alerts`)).toEqual([
      { alert_id: spending.alertId, account_id: 'acct-1', month: '2026-11', threshold_minor: 5000, total_minor: 5100, currency: 'EUR' },
    ]);
    expect(await rowsOf(data.path, `SELECT station_id, toString(slot_start) AS slot, traffic_condition, vehicle_count, expected_minimum FROM ${db}.traffic_alerts`)).toEqual([
      { station_id: 'st-A', slot: '2026-11-22 14:00:00.000', traffic_condition: 'BELOW_MINIMUM', vehicle_count: 41, expected_minimum: 100 },
    ]);
    const letters = await readDeadLetters(broker.jsm, Subjects.deadLetter('warehouse-loader'));
    expect(letters.filter((letter) => letter.originalSubject === 'tolls.alerts.traffic').map((letter) => letter.reasonCode)).toEqual(['UNDECODABLE']);
  }, 60_000);
});
