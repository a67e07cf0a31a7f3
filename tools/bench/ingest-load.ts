import * as grpc from '@grpc/grpc-js';
import {
  IngestServiceClient,
  SubmitTransactionsRequest,
  SubmitTransactionsResponse,
  TransactionStatus,
  VehicleClass,
  type TollTransaction,
} from '@tollstream/contracts';
import { percentile } from './stats';

export interface IngestLoadOptions {
  address: string;
  token: string;
  stationIds: string[];
  durationSeconds: number;
  batchSize: number;
  concurrentBatches: number;
  /** gRPC channels (HTTP/2 connections) to spread the batches over. */
  channels: number;
  /** Offered load; unset = as fast as acknowledgements come back (saturation). */
  targetRecordsPerSecond?: number;
  /** Upper bound of the rate, to size the pre-encoded requests (saturation phase). */
  maxRecordsPerSecond?: number;
}

export interface IngestLoadFigures {
  acceptedPerSecond: number;
  accepted: number;
  notAccepted: number;
  batches: number;
  /** True if the pre-encoded requests ran out before the time was up (raise maxRecordsPerSecond). */
  exhausted: boolean;
  batchLatencyMs: { p50: number; p99: number; max: number };
}

/** Sends unique, valid transactions as fast as the ingestor acknowledges them, for a fixed time. */
export async function runIngestLoad(options: IngestLoadOptions): Promise<IngestLoadFigures> {
  const clients = Array.from(
    { length: options.channels },
    (_, i) =>
      new IngestServiceClient(options.address, grpc.credentials.createInsecure(), {
        'grpc.max_send_message_length': 16 * 1024 * 1024,
        'grpc.channel_id': i, // distinct option => distinct connection
      } as grpc.ChannelOptions),
  );
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${options.token}`);
  const latencies: number[] = [];
  let accepted = 0;
  let notAccepted = 0;
  let next = 0;
  const runId = Date.now().toString(36);
  const makeBatch = (): TollTransaction[] =>
    Array.from({ length: options.batchSize }, () => {
      const n = next++;
      return {
        transactionId: `${runId}-${n}`,
        stationId: options.stationIds[n % options.stationIds.length],
        laneId: `L${n % 6}`,
        tagId: `TAG-${n % 100_000}`,
        plate: '',
        accountId: `acct-${n % 50_000}`,
        vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
        amountMinor: 150 + (n % 500),
        currency: 'USD',
        occurredAt: new Date(),
      };
    });
  // Requests are encoded before the clock starts: the load generator shares the 2 cores with the
  // ingestor and nats-server, and should spend them on sending, not on building records.
  const rate = options.targetRecordsPerSecond ?? options.maxRecordsPerSecond ?? 200_000;
  const prepared: Buffer[] = Array.from({ length: Math.ceil((rate * options.durationSeconds) / options.batchSize) + options.concurrentBatches }, () =>
    Buffer.from(SubmitTransactionsRequest.encode({ transactions: makeBatch() }).finish()),
  );
  let exhausted = false;
  const nextRequest = (): Buffer | undefined => {
    const request = prepared.pop();
    if (!request) exhausted = true;
    return request;
  };
  const deadline = performance.now() + options.durationSeconds * 1000;
  const started = performance.now();

  const sendOne = async (client: IngestServiceClient) => {
    const request = nextRequest();
    if (!request) return;
    const sent = performance.now();
    const response = await new Promise<SubmitTransactionsResponse>((resolve, reject) =>
      client.makeUnaryRequest(
        '/tolls.ingest.v1.IngestService/SubmitTransactions',
        (encoded: Buffer) => encoded,
        (bytes: Buffer) => SubmitTransactionsResponse.decode(bytes),
        request,
        metadata,
        { deadline: Date.now() + 30_000 },
        (error: grpc.ServiceError | null, value?: SubmitTransactionsResponse) => (error || !value ? reject(error) : resolve(value)),
      ),
    );
    latencies.push(performance.now() - sent);
    for (const result of response.results) {
      if (result.status === TransactionStatus.TRANSACTION_STATUS_ACCEPTED) accepted++;
      else notAccepted++;
    }
  };

  if (options.targetRecordsPerSecond) {
    // Open loop at a fixed offered rate: latency as a station sees it when the ingestor is not saturated.
    const intervalMs = (options.batchSize / options.targetRecordsPerSecond) * 1000;
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; performance.now() < deadline; i++) {
      const due = started + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (inFlight.size >= options.concurrentBatches) await Promise.race(inFlight);
      const call = sendOne(clients[i % clients.length]).finally(() => inFlight.delete(call));
      inFlight.add(call);
    }
    await Promise.all(inFlight);
  } else {
    const worker = async (index: number) => {
      while (performance.now() < deadline && !exhausted) await sendOne(clients[index % clients.length]);
    };
    await Promise.all(Array.from({ length: options.concurrentBatches }, (_, i) => worker(i)));
  }
  const seconds = (performance.now() - started) / 1000;
  for (const client of clients) client.close();
  return {
    acceptedPerSecond: Math.round(accepted / seconds),
    accepted,
    notAccepted,
    batches: latencies.length,
    exhausted,
    batchLatencyMs: {
      p50: Math.round(percentile(latencies, 50) * 10) / 10,
      p99: Math.round(percentile(latencies, 99) * 10) / 10,
      max: Math.round(Math.max(...latencies) * 10) / 10,
    },
  };
}
