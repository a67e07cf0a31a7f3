import * as grpc from '@grpc/grpc-js';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  IngestServiceClient,
  TransactionStatus,
  VehicleClass,
  type SubmitTransactionsResponse,
  type TollTransaction,
} from '@tollstream/contracts';
import { freePort, readTransactionStream, startIngestor, startNats, tempDir, type NatsHandle, type ServiceProcess } from '@tollstream/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const token = 'crash-test-station-token-000001';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ingestor killed with SIGKILL while stations send', () => {
  let nats: NatsHandle;
  let ingestor: ServiceProcess | undefined;
  let remove: () => Promise<void>;

  afterAll(async () => {
    await ingestor?.stop();
    await nats?.stop();
    await remove?.();
  });

  it('loses no acknowledged record and stores none twice', async () => {
    nats = await startNats();
    const dir = await tempDir('ingestor-crash');
    remove = dir.remove;
    const credentialsFile = join(dir.path, 'stations.json');
    writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'all', token, stationIds: ['st-1', 'st-2', 'st-3', 'st-4'] }] }));
    const grpcPort = await freePort();
    const start = () => startIngestor({ natsUrl: nats.url, credentialsFile, grpcPort });
    ingestor = await start();

    const client = new IngestServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    const acknowledged = new Set<string>();
    const sentIds = new Set<string>();

    // A station-like sender: each batch is resent until every record has a final answer.
    const sendBatch = async (batch: TollTransaction[]) => {
      let pending = batch;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 200) throw new Error('ingestor never came back');
        try {
          const response = await new Promise<SubmitTransactionsResponse>((resolve, reject) =>
            client.submitTransactions({ transactions: pending }, metadata, { deadline: Date.now() + 3_000 }, (error: grpc.ServiceError | null, value: SubmitTransactionsResponse) =>
              error ? reject(error) : resolve(value),
            ),
          );
          const retry: TollTransaction[] = [];
          response.results.forEach((result, i) => {
            if (result.status === TransactionStatus.TRANSACTION_STATUS_ACCEPTED || result.status === TransactionStatus.TRANSACTION_STATUS_DUPLICATE) {
              acknowledged.add(`${pending[i].stationId}|${result.transactionId}`);
            } else retry.push(pending[i]);
          });
          pending = retry;
        } catch {
          await sleep(100);
        }
      }
    };

    const batches = 200;
    let batchesDone = 0;
    const sender = (async () => {
      for (let b = 0; b < batches; b++) {
        const batch = Array.from({ length: 250 }, (_, i): TollTransaction => {
          const stationId = `st-${(i % 4) + 1}`;
          const transactionId = `b${b}-r${i}`;
          sentIds.add(`${stationId}|${transactionId}`);
          return {
            transactionId, stationId, laneId: 'L1', tagId: `TAG-${i}`, plate: '', accountId: `acct-${i % 17}`,
            vehicleClass: VehicleClass.VEHICLE_CLASS_CAR, amountMinor: 100 + i, currency: 'USD', occurredAt: new Date(),
          };
        });
        // Four concurrent copies of each batch: retries racing each other, as stations do.
        await Promise.all([sendBatch(batch), sendBatch(batch), sendBatch(batch.slice(0, 100)), sendBatch(batch.slice(100))]);
        batchesDone++;
      }
    })();

    const killedAtBatch: number[] = [];
    for (let kill = 0; kill < 3; kill++) {
      await sleep(700);
      killedAtBatch.push(batchesDone);
      await ingestor.kill('SIGKILL');
      await sleep(200);
      ingestor = await start();
    }
    await sender;
    client.close();
    // A graceful stop (SIGTERM) after the run exits 0.
    expect(await ingestor.stop()).toBe(0);
    ingestor = undefined;

    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    const stored = (await readTransactionStream(jsm)).map((record) => `${record.transaction?.stationId}|${record.transaction?.transactionId}`);
    await nc.close();

    // The kills happened mid-stream, not after the senders had finished.
    expect(killedAtBatch.every((done) => done > 0 && done < batches)).toBe(true);
    expect(acknowledged.size).toBe(sentIds.size);
    expect(stored.length).toBe(new Set(stored).size); // none stored twice
    expect(new Set(stored)).toEqual(sentIds); // every acknowledged record stored
  }, 180_000);
});
