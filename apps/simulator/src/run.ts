import * as grpc from '@grpc/grpc-js';
import { AccountServiceClient, RejectionCode, TransactionStatus, type GetSpendingThresholdResponse, type TollTransaction, type TransactionResult } from '@tollstream/contracts';
import { Counter, createLogger, createMetricsRegistry, Gauge, grpcClientCredentials, startOpsHttpServer, type ClientTlsOptions, type OpsHttpServer } from '@tollstream/service-kit';
import { buildTrafficModel, parseFaults, TrafficGenerator, type GenerationReport, type StationBatch, type TrafficPattern } from '@tollstream/simulator';
import { createGrpcIngestTransport, isRetryableStatus, type IngestTransport } from '@tollstream/station-sender';

const grpcCodeOf = (error: unknown): number | undefined => {
  const code = typeof error === 'object' && error !== null && 'code' in error ? (error as { code: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
};

const grpcDetailsOf = (error: unknown): string => {
  const details = typeof error === 'object' && error !== null && 'details' in error ? (error as { details: unknown }).details : undefined;
  if (typeof details === 'string' && details.length > 0) return details;
  return error instanceof Error ? error.message : String(error);
};

export interface ModelSettings {
  seed: string;
  stations: number;
  accounts: number;
  timeZones?: string[];
}

export interface RunSettings extends ModelSettings {
  ingestAddress: string;
  /** Station bearer token: sent, never printed. */
  token: string;
  rate: number;
  pattern: TrafficPattern;
  /** Seconds of wall-clock time; 0 = until stopped. */
  durationS: number;
  maxRecords?: number;
  backfillMs: number;
  faults: string;
  batchSize: number;
  concurrency: number;
  httpPort?: number;
  accountService?: { address: string; token: string };
  /** TLS to the ingestor and the AccountService (ADR 0017); unset: plaintext. */
  tls?: ClientTlsOptions;
  progressIntervalMs: number;
  /** Aborted on SIGINT/SIGTERM: stop after the batches in flight. */
  signal: AbortSignal;
  /** One JSON line per call. */
  writeLine: (line: string) => void;
}

export interface RunSummary {
  /** live: the backfill is done and event time has reached the clock (printed once). */
  event: 'progress' | 'live' | 'summary';
  elapsedSeconds: number;
  /** Event time generation started at (now − backfill); "@DUR" in faults counts from here. */
  eventTimeStart: string;
  /** Event time the generator has reached. */
  eventTime: string;
  submittedRecords: number;
  accepted: number;
  duplicate: number;
  rejected: Record<string, number>;
  rejectedByField: Record<string, number>;
  /** Rejections other than those the generator labelled (should stay 0). */
  unexpectedRejections: number;
  /** Records resubmitted after UNAVAILABLE answers or failed calls. */
  retriedRecords: number;
  recordsPerSecond: number;
  thresholdsSet?: number;
  generated: GenerationReport;
}

export class RunError extends Error {}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Sets every account's monthly threshold through the AccountService; unchanged ones are left alone, so reruns are idempotent. */
async function setThresholds(settings: RunSettings, model: ReturnType<typeof buildTrafficModel>): Promise<number> {
  const service = settings.accountService;
  if (!service) return 0;
  const { credentials, channelOptions } = grpcClientCredentials(settings.tls ?? {});
  const client = new AccountServiceClient(service.address, credentials, channelOptions);
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${service.token}`);
  const deadline = () => ({ deadline: Date.now() + 10_000 });
  let changed = 0;
  try {
    let next = 0;
    const worker = async () => {
      while (next < model.accounts.length) {
        const account = model.accounts[next++];
        if (!account) return;
        const current = await new Promise<GetSpendingThresholdResponse | undefined>((resolve, reject) =>
          client.getSpendingThreshold({ accountId: account.id }, metadata, deadline(), (error, response) =>
            error ? (error.code === grpc.status.NOT_FOUND ? resolve(undefined) : reject(error)) : resolve(response),
          ),
        );
        const amount = current?.threshold?.amount;
        if (amount && amount.amountMinor === account.monthlyThresholdMinor && amount.currency === model.currency) continue;
        await new Promise<void>((resolve, reject) =>
          client.setSpendingThreshold({ accountId: account.id, threshold: { amountMinor: account.monthlyThresholdMinor, currency: model.currency } }, metadata, deadline(), (error) =>
            error ? reject(error) : resolve(),
          ),
        );
        changed++;
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  } catch (error) {
    throw new RunError(`setting account thresholds at ${service.address} failed: ${grpcDetailsOf(error)}`);
  } finally {
    client.close();
  }
  return changed;
}

/** Generates traffic and submits it like stations do; resolves with the final summary. */
export async function runSimulation(
  settings: RunSettings,
  transportFactory: (address: string, token: string) => IngestTransport = (address, token) => createGrpcIngestTransport({ address, token, tls: settings.tls }),
): Promise<RunSummary> {
  const model = buildTrafficModel(settings);
  const startedWall = Date.now();
  const startMs = Math.floor((startedWall - settings.backfillMs) / 1000) * 1000;
  const faults = parseFaults(settings.faults, startMs, new Set(model.stations.map((station) => station.id)));
  const generator = new TrafficGenerator(model, { recordsPerSecond: settings.rate, pattern: settings.pattern, batchSize: settings.batchSize, faults, maxRecords: settings.maxRecords });

  const registry = createMetricsRegistry('simulator');
  const sentCounter = new Counter({ name: 'tollstream_simulator_records_sent_total', help: 'Records submitted (resubmissions included)', registers: [registry] });
  const acceptedCounter = new Counter({ name: 'tollstream_simulator_records_accepted_total', help: 'Records answered ACCEPTED', registers: [registry] });
  const duplicateCounter = new Counter({ name: 'tollstream_simulator_records_duplicate_total', help: 'Records answered DUPLICATE', registers: [registry] });
  const rejectedCounter = new Counter({ name: 'tollstream_simulator_records_rejected_total', help: 'Records answered REJECTED, by rejection code', labelNames: ['code'], registers: [registry] });
  const rateGauge = new Gauge({ name: 'tollstream_simulator_records_per_second', help: 'Records submitted per second over the last progress interval', registers: [registry] });

  const summary: RunSummary = {
    event: 'progress',
    elapsedSeconds: 0,
    eventTimeStart: new Date(startMs).toISOString(),
    eventTime: new Date(startMs).toISOString(),
    submittedRecords: 0,
    accepted: 0,
    duplicate: 0,
    rejected: {},
    rejectedByField: {},
    unexpectedRejections: 0,
    retriedRecords: 0,
    recordsPerSecond: 0,
    generated: generator.report(),
  };

  let ops: OpsHttpServer | undefined;
  if (settings.httpPort !== undefined) {
    const logger = createLogger({ service: 'simulator', level: 'warn' }, process.stderr);
    ops = await startOpsHttpServer({ port: settings.httpPort, registry, isReady: () => true, logger });
  }
  const transport = transportFactory(settings.ingestAddress, settings.token);
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  let cursor = startMs;
  let lastProgress = { at: startedWall, submitted: 0 };

  const emit = (event: RunSummary['event']) => {
    const now = Date.now();
    summary.event = event;
    summary.elapsedSeconds = Number(((now - startedWall) / 1000).toFixed(1));
    summary.eventTime = new Date(cursor).toISOString();
    summary.generated = generator.report();
    summary.recordsPerSecond = Math.round(((summary.submittedRecords - lastProgress.submitted) * 1000) / Math.max(1, now - lastProgress.at));
    if (event === 'summary') summary.recordsPerSecond = Math.round((summary.submittedRecords * 1000) / Math.max(1, now - startedWall));
    rateGauge.set(summary.recordsPerSecond);
    lastProgress = { at: now, submitted: summary.submittedRecords };
    settings.writeLine(JSON.stringify(summary));
  };

  const count = (result: TransactionResult, expectedField: string | undefined) => {
    if (result.status === TransactionStatus.TRANSACTION_STATUS_ACCEPTED) {
      summary.accepted++;
      acceptedCounter.inc();
    } else if (result.status === TransactionStatus.TRANSACTION_STATUS_DUPLICATE) {
      summary.duplicate++;
      duplicateCounter.inc();
    } else {
      const code = (RejectionCode[result.rejectionCode] ?? String(result.rejectionCode)).replace('REJECTION_CODE_', '');
      summary.rejected[code] = (summary.rejected[code] ?? 0) + 1;
      summary.rejectedByField[result.field] = (summary.rejectedByField[result.field] ?? 0) + 1;
      rejectedCounter.inc({ code });
      if (expectedField === undefined || expectedField !== result.field) summary.unexpectedRejections++;
    }
  };

  /** Submits records until each has a final answer; UNAVAILABLE answers and failed calls are retried with backoff. */
  const submit = async (records: TollTransaction[], expectedRejections: ReadonlyMap<string, string>) => {
    let pending = records;
    for (let attempt = 1; pending.length > 0; attempt++) {
      sentCounter.inc(pending.length);
      summary.submittedRecords += pending.length;
      let retry: TollTransaction[] = [];
      try {
        const response = await transport.submitTransactions({ transactions: pending }, new Date(Date.now() + 30_000));
        response.results.forEach((result, index) => {
          const record = pending[index] as TollTransaction;
          if (result.status === TransactionStatus.TRANSACTION_STATUS_REJECTED && result.rejectionCode === RejectionCode.REJECTION_CODE_UNAVAILABLE) retry.push(record);
          else count(result, expectedRejections.get(record.transactionId));
        });
      } catch (error) {
        if (!isRetryableStatus(grpcCodeOf(error))) throw new RunError(`the ingestor at ${settings.ingestAddress} refused the batch: ${grpcDetailsOf(error)}`);
        retry = pending;
      }
      if (retry.length === 0) return;
      if (attempt >= 30) throw new RunError(`the ingestor kept answering unavailable (${retry.length} records not stored)`);
      summary.retriedRecords += retry.length;
      pending = retry;
      await sleep(Math.min(5_000, 100 * 2 ** attempt));
    }
  };

  const sendBatch = async (batch: StationBatch) => {
    await submit(batch.transactions, batch.expectedRejections);
    // A station retrying a batch whose answer it did not get: the ingestor answers DUPLICATE.
    if (batch.resend.length > 0) await submit(batch.resend, new Map());
  };

  const dispatch = async (batches: StationBatch[]) => {
    for (const batch of batches) {
      while (inFlight.size >= settings.concurrency) await Promise.race(inFlight);
      if (failure) throw failure;
      const task: Promise<void> = sendBatch(batch)
        .catch((error: unknown) => {
          failure ??= error instanceof Error ? error : new Error(String(error));
        })
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
    }
  };

  const progressTimer = setInterval(() => emit('progress'), settings.progressIntervalMs);
  progressTimer.unref();
  try {
    summary.thresholdsSet = settings.accountService ? await setThresholds(settings, model) : undefined;
    let announcedLive = false;
    const deadline = settings.durationS > 0 ? startedWall + settings.durationS * 1000 : Infinity;
    while (!settings.signal.aborted && !generator.exhausted && Date.now() < deadline && !failure) {
      const liveEdge = Math.floor(Date.now() / 1000) * 1000;
      if (cursor >= liveEdge) {
        if (!announcedLive) {
          announcedLive = true;
          emit('live');
        }
        // Live: one second of event time at a time, as it happens.
        await sleep(liveEdge + 1000 - Date.now() + 5, settings.signal);
        continue;
      }
      // Backfill goes in steps of 10 s of event time, as fast as the ingestor takes it, in event-time order.
      const to = Math.min(cursor + 10_000, liveEdge);
      const batches = generator.generate(cursor, to);
      cursor = to;
      await dispatch(batches);
    }
    // Held-back late records go out at a normal end, so that the totals are complete; not after a signal.
    if (!settings.signal.aborted && !failure) await dispatch(generator.flush());
    await Promise.all(inFlight);
    if (failure) throw failure;
  } finally {
    clearInterval(progressTimer);
    transport.close();
    await ops?.close();
  }
  emit('summary');
  return summary;
}
