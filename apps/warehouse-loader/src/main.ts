import { writeSync } from 'node:fs';
import { connectServiceToBroker, DeadLetterPublisher } from '@tollstream/messaging';
import {
  Counter,
  createLogger,
  createMetricsRegistry,
  Gauge,
  Histogram,
  loadConfig,
  loadServiceTls,
  runService,
  startOpsHttpServer,
} from '@tollstream/service-kit';
import {
  applyMigrations,
  createQueryHandler,
  newQueryToken,
  openReadOnlyEmbeddedClient,
  openWarehouse,
  removeQueryEndpointFile,
  WarehouseLoader,
  writeQueryEndpointFile,
} from '@tollstream/warehouse';
import { warehouseLoaderConfigSchema } from './config';

const logger = createLogger({ service: 'warehouse-loader', level: process.env['LOG_LEVEL'] });

void runService({
  name: 'warehouse-loader',
  logger,
  shutdownGraceMs: warehouseLoaderConfigSchema.shape.SHUTDOWN_GRACE_MS.catch(20_000).parse(process.env['SHUTDOWN_GRACE_MS']),
  start: async () => {
    const config = loadConfig(warehouseLoaderConfigSchema);
    const tls = loadServiceTls(config, logger);
    const registry = createMetricsRegistry('warehouse-loader');
    const rowsInserted = new Counter({
      name: 'tollstream_warehouse_rows_inserted_total',
      help: 'Rows confirmed by the warehouse, by table.',
      labelNames: ['table'],
      registers: [registry],
    });
    const batchRows = new Histogram({
      name: 'tollstream_warehouse_insert_rows',
      help: 'Rows per insert (batch size), by table.',
      labelNames: ['table'],
      buckets: [1, 10, 100, 500, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000],
      registers: [registry],
    });
    const insertSeconds = new Histogram({
      name: 'tollstream_warehouse_insert_duration_seconds',
      help: 'Time for the warehouse to confirm one insert, by table.',
      labelNames: ['table'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    const endToEndSeconds = new Histogram({
      name: 'tollstream_warehouse_ingest_to_stored_seconds',
      help: 'From ingested_at (accepted by the ingestor) to the insert confirmed by the warehouse, per stream message of transactions.',
      buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300],
      registers: [registry],
    });
    const lag = new Gauge({
      name: 'tollstream_warehouse_consumer_lag_messages',
      help: 'Stream messages not yet delivered to the loader, by stream (from the last delivery).',
      labelNames: ['stream'],
      registers: [registry],
    });
    const insertFailures = new Counter({
      name: 'tollstream_warehouse_insert_failures_total',
      help: 'Inserts that failed and were retried, by table.',
      labelNames: ['table'],
      registers: [registry],
    });
    const alreadyLoaded = new Counter({
      name: 'tollstream_warehouse_already_loaded_rows_total',
      help: 'Rows of redelivered or replayed messages that were already stored (skipped, exactly once).',
      registers: [registry],
    });
    const deadLetters = new Counter({
      name: 'tollstream_dead_letters_total',
      help: 'Messages or records sent to the dead-letter stream, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    let newestIngestedAtMs = Number.NaN;
    new Gauge({
      name: 'tollstream_warehouse_freshness_seconds',
      help: 'Now minus the newest ingested_at of the transactions loaded by this process (data age in the warehouse).',
      registers: [registry],
      collect() {
        if (Number.isFinite(newestIngestedAtMs)) this.set((Date.now() - newestIngestedAtMs) / 1000);
      },
    });

    const warehouse = await openWarehouse({ clickhouseUrl: config.CLICKHOUSE_URL, dataDir: config.WAREHOUSE_DATA_DIR });
    const migration = await applyMigrations(warehouse.client, config.WAREHOUSE_DATABASE, undefined, config.WAREHOUSE_MERGE_POLICY);
    logger.info({ warehouse: warehouse.describe, database: migration.database, applied: migration.applied, schemaVersion: migration.currentVersion, mergePolicy: migration.mergePolicy }, 'warehouse schema up to date');

    const { nc, js, jsm } = await connectServiceToBroker(config, 'warehouse-loader');

    let crashArmed = config.WAREHOUSE_LOADER_CRASH_AFTER_INSERT;
    const loader = new WarehouseLoader({
      client: warehouse.client,
      rawInsert: warehouse.rawInsert,
      database: config.WAREHOUSE_DATABASE,
      js,
      jsm,
      deadLetters: new DeadLetterPublisher(js, 'warehouse-loader'),
      maxBatchRows: config.WAREHOUSE_BATCH_MAX_ROWS,
      maxBatchDelayMs: config.WAREHOUSE_BATCH_MAX_DELAY_MS,
      maxBatchMessages: config.WAREHOUSE_BATCH_MAX_MESSAGES,
      fetchAheadMessages: config.WAREHOUSE_FETCH_AHEAD_MESSAGES,
      consumerPrefix: config.WAREHOUSE_CONSUMER_PREFIX,
      ackWaitMs: config.WAREHOUSE_ACK_WAIT_MS,
      afterInsertBeforeAck: (stream) => {
        if (crashArmed && stream === 'transactions') {
          crashArmed = false;
          // Synchronously: the logger buffers, and nothing survives SIGKILL.
          writeSync(2, 'WAREHOUSE_LOADER_CRASH_AFTER_INSERT: killing this process after a confirmed insert, before the ack\n');
          process.kill(process.pid, 'SIGKILL');
        }
      },
      observer: {
        inserted: (table, rows, seconds) => {
          rowsInserted.inc({ table }, rows);
          batchRows.observe({ table }, rows);
          insertSeconds.observe({ table }, seconds);
          logger.debug({ table, rows, ms: Math.round(seconds * 1000) }, 'inserted');
        },
        loaded: (_stream, _messages, ingestedAtMs, confirmedAtMs) => {
          for (const ms of ingestedAtMs) {
            endToEndSeconds.observe(Math.max(0, confirmedAtMs - ms) / 1000);
            if (!(ms <= newestIngestedAtMs)) newestIngestedAtMs = ms;
          }
        },
        deadLettered: (stream, reasonCode) => {
          deadLetters.inc({ reason: reasonCode });
          logger.warn({ stream, reason: reasonCode }, 'dead-lettered');
        },
        lag: (stream, pending) => lag.set({ stream }, pending),
        alreadyLoaded: (stream, messages, rows) => {
          alreadyLoaded.inc(rows);
          logger.info({ stream, messages, rows }, 'redelivered messages were already stored; not inserted again');
        },
        insertFailed: (table, error, attempt) => {
          insertFailures.inc({ table });
          logger.warn({ table, attempt, err: error }, 'insert failed; retrying');
        },
        error: (stream, error) => logger.error({ stream, err: error }, 'message handling failed; it will be redelivered'),
      },
    });
    await loader.start();
    void loader.failed.then((error) => {
      logger.fatal({ err: error }, 'loader stopped unexpectedly; exiting');
      process.exit(1);
    });

    const embedded = warehouse.kind === 'embedded';
    const queryClient = config.WAREHOUSE_QUERY_ENDPOINT && embedded ? await openReadOnlyEmbeddedClient(config.WAREHOUSE_DATA_DIR) : undefined;
    const queryToken = config.WAREHOUSE_QUERY_TOKEN ?? newQueryToken();
    let ready = false;
    const ops = await startOpsHttpServer({
      host: config.WAREHOUSE_HTTP_HOST,
      port: config.WAREHOUSE_HTTP_PORT,
      registry,
      isReady: () => ready && !nc.isClosed(),
      logger,
      tls,
      routes: queryClient ? { '/query': createQueryHandler({ client: queryClient, token: queryToken }) } : undefined,
    });
    if (queryClient) {
      const host = config.WAREHOUSE_HTTP_HOST === '0.0.0.0' || config.WAREHOUSE_HTTP_HOST === '::' ? '127.0.0.1' : config.WAREHOUSE_HTTP_HOST;
      writeQueryEndpointFile(config.WAREHOUSE_DATA_DIR, {
        url: `${tls?.opsHttp ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${ops.port}`,
        token: queryToken,
        pid: process.pid,
        database: config.WAREHOUSE_DATABASE,
      });
    }
    ready = true;
    logger.info(
      {
        httpPort: ops.port,
        warehouse: warehouse.describe,
        database: config.WAREHOUSE_DATABASE,
        batchMaxRows: config.WAREHOUSE_BATCH_MAX_ROWS,
        batchMaxDelayMs: config.WAREHOUSE_BATCH_MAX_DELAY_MS,
        queryEndpoint: queryClient ? '/query' : undefined,
      },
      'warehouse-loader ready',
    );

    return {
      stop: async () => {
        ready = false;
        if (queryClient) removeQueryEndpointFile(config.WAREHOUSE_DATA_DIR);
        await loader.stop();
        await nc.drain();
        await ops.close();
        await queryClient?.close();
        await warehouse.close();
      },
    };
  },
});
