import {
  fileDescriptorSetBase64,
  IngestServiceService,
  rejectionCodeName,
  TollTransaction,
  TransactionStatus,
} from '@tollstream/contracts';
import {
  createIngestService,
  isoCurrencies,
  StationCredentials,
  TransactionIngest,
  TransactionLog,
} from '@tollstream/ingest';
import { connectServiceToBroker, DeadLetterPublisher, partitionForStation } from '@tollstream/messaging';
import {
  Counter,
  createLogger,
  createMetricsRegistry,
  Gauge,
  Histogram,
  loadConfig,
  loadServiceTls,
  runService,
  startGrpcServer,
  startOpsHttpServer,
} from '@tollstream/service-kit';
import { ingestorConfigSchema } from './config';

const logger = createLogger({ service: 'ingestor', level: process.env['LOG_LEVEL'] });

void runService({
  name: 'ingestor',
  logger,
  // Read before the full config is validated, so that even a failed start-up honours it.
  shutdownGraceMs: ingestorConfigSchema.shape.SHUTDOWN_GRACE_MS.catch(20_000).parse(process.env['SHUTDOWN_GRACE_MS']),
  start: async () => {
    const config = loadConfig(ingestorConfigSchema);
    const tls = loadServiceTls(config, logger);
    const credentials = StationCredentials.fromFile(config.INGEST_STATION_CREDENTIALS_FILE);
    const registry = createMetricsRegistry('ingestor');
    const records = new Counter({
      name: 'tollstream_ingest_records_total',
      help: 'Records received from stations, by outcome (accepted, duplicate, rejected) and rejection reason.',
      labelNames: ['outcome', 'reason'],
      registers: [registry],
    });
    const appendSeconds = new Histogram({
      name: 'tollstream_ingest_append_duration_seconds',
      help: 'Time for the transaction stream to confirm one append (publish latency).',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    const appendRecords = new Histogram({
      name: 'tollstream_ingest_append_records',
      help: 'Records per append to the transaction stream (group-commit size).',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500],
      registers: [registry],
    });
    const appendConflicts = new Counter({
      name: 'tollstream_ingest_append_conflicts_total',
      help: 'Appends refused because another ingestor appended to the partition first.',
      registers: [registry],
    });
    const appendRetries = new Counter({
      name: 'tollstream_ingest_append_retries_total',
      help: 'Appends retried because the broker did not answer.',
      registers: [registry],
    });
    const batchesRefused = new Counter({
      name: 'tollstream_ingest_batches_refused_total',
      help: 'Batches refused as a whole (no record looked at), by call (submit, stream) and reason (invalid_batch, unavailable).',
      labelNames: ['call', 'reason'],
      registers: [registry],
    });
    const deadLetters = new Counter({
      name: 'tollstream_dead_letters_total',
      help: 'Records sent to the dead-letter stream, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });

    const { nc, js, jsm, topology } = await connectServiceToBroker(config, 'ingestor');

    const log = new TransactionLog(
      js,
      jsm,
      {
        partitions: config.TOLL_TX_PARTITIONS,
        acceptanceHorizonMs: config.INGEST_ACCEPTANCE_HORIZON_MS,
        maxClockSkewMs: config.INGEST_MAX_CLOCK_SKEW_MS,
        maxRecordsPerAppend: 2_000,
        maxBytesPerAppend: topology.options.maxMessageBytes - 64 * 1024,
        appendDeadlineMs: config.INGEST_APPEND_DEADLINE_MS,
      },
      {
        appended: (_partition, count, latencyMs) => {
          appendSeconds.observe(latencyMs / 1000);
          appendRecords.observe(count);
        },
        conflict: () => appendConflicts.inc(),
        retried: (partition, error) => {
          appendRetries.inc();
          logger.warn({ partition, err: error }, 'append retried');
        },
      },
    );
    new Gauge({
      name: 'tollstream_ingest_duplicate_index_keys',
      help: 'Transactions remembered for duplicate detection (within the acceptance horizon).',
      registers: [registry],
      collect() {
        this.set(log.duplicateIndexSize);
      },
    });
    await log.start();

    const deadLetterPublisher = new DeadLetterPublisher(js, 'ingestor', (reason) => deadLetters.inc({ reason }));
    const ingest = new TransactionIngest({
      policy: {
        maxAmountMinor: config.INGEST_MAX_AMOUNT_MINOR,
        maxClockSkewMs: config.INGEST_MAX_CLOCK_SKEW_MS,
        acceptanceHorizonMs: config.INGEST_ACCEPTANCE_HORIZON_MS,
        currencies: isoCurrencies,
      },
      partitionOf: (stationId) => partitionForStation(stationId, config.TOLL_TX_PARTITIONS),
      appender: log,
      rejectedSink: {
        deadLetter: async ({ transaction, rejection }) => {
          await deadLetterPublisher.publish({
            reasonCode: rejectionCodeName(rejection.code),
            reason: rejection.reason,
            original: TollTransaction.encode(transaction).finish(),
            stationId: transaction.stationId.slice(0, 64),
          });
        },
      },
      observer: {
        recorded: (status, reason, count) =>
          records.inc({ outcome: TransactionStatus[status].replace('TRANSACTION_STATUS_', '').toLowerCase(), reason }, count),
      },
    });

    let ready = false;
    const ops = await startOpsHttpServer({ port: config.INGEST_HTTP_PORT, registry, isReady: () => ready && !nc.isClosed(), logger, tls });
    const grpcServer = await startGrpcServer({
      tls,
      host: config.INGEST_GRPC_HOST,
      port: config.INGEST_GRPC_PORT,
      logger,
      fileDescriptorSetBase64,
      maxReceiveMessageBytes: config.INGEST_MAX_REQUEST_BYTES,
      services: [
        {
          name: 'tolls.ingest.v1.IngestService',
          definition: IngestServiceService,
          implementation: createIngestService(
            ingest,
            credentials,
            {
              maxRecordsPerBatch: config.INGEST_MAX_RECORDS_PER_BATCH,
              maxBatchesInFlightPerStream: config.INGEST_MAX_BATCHES_IN_FLIGHT_PER_STREAM,
            },
            logger,
            { batchRefused: (call, reason) => batchesRefused.inc({ call, reason }) },
          ),
        },
      ],
    });
    ready = true;
    logger.info(
      { grpcPort: grpcServer.port, httpPort: ops.port, partitions: config.TOLL_TX_PARTITIONS, duplicateIndexKeys: log.duplicateIndexSize },
      'ingestor ready',
    );

    return {
      stop: async () => {
        ready = false;
        // Stop taking calls, let in-flight batches be stored and answered, then close the broker.
        await grpcServer.shutdown(Math.max(1_000, config.SHUTDOWN_GRACE_MS - 2_000));
        await log.stop();
        await nc.drain();
        await ops.close();
      },
    };
  },
});
