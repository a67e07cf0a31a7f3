import { fileDescriptorSetBase64, TrafficReferenceServiceService } from '@tollstream/contracts';
import { connectServiceToBroker, DeadLetterPublisher } from '@tollstream/messaging';
import { Counter, createLogger, createMetricsRegistry, Gauge, Histogram, loadConfig, loadServiceTls, loadServiceToken, runService, startGrpcServer, startOpsHttpServer } from '@tollstream/service-kit';
import { KvTrafficDetectionStore, KvTrafficReferenceStore, MongoTrafficStores, type TrafficDetectionStore, type TrafficReferenceStore } from '@tollstream/stores';
import { createTrafficReferenceService, ReferenceCache, TrafficConsumer } from '@tollstream/traffic';
import { trafficConfigSchema } from './config';

const logger = createLogger({ service: 'traffic-anomaly', level: process.env['LOG_LEVEL'] });


void runService({
  name: 'traffic-anomaly',
  logger,
  shutdownGraceMs: trafficConfigSchema.shape.SHUTDOWN_GRACE_MS.catch(20_000).parse(process.env['SHUTDOWN_GRACE_MS']),
  start: async () => {
    const config = loadConfig(trafficConfigSchema);
    const tls = loadServiceTls(config, logger);
    const apiToken = loadServiceToken(config.TRAFFIC_API_TOKEN_FILE, config.TRAFFIC_API_TOKEN, 'TRAFFIC_API_TOKEN_FILE');
    const registry = createMetricsRegistry('traffic-anomaly');
    const alerts = new Counter({ name: 'tollstream_traffic_alerts_published_total', help: 'Traffic alerts published, by condition.', labelNames: ['condition'], registers: [registry] });
    const evaluations = new Counter({ name: 'tollstream_traffic_evaluations_total', help: 'Station × slot evaluations against the reference (re-evaluations after amendments included).', registers: [registry] });
    const alertDelay = new Histogram({
      name: 'tollstream_traffic_alert_delay_seconds',
      help: 'Wall clock at publication minus slot end plus grace (meaningful in real time; large during replays).',
      buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    });
    const roundSeconds = new Histogram({ name: 'tollstream_traffic_round_duration_seconds', help: 'One consumption round.', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] });
    const failedRounds = new Counter({ name: 'tollstream_traffic_failed_rounds_total', help: 'Rounds not acknowledged (redelivered).', registers: [registry] });
    const lastBatchAge = new Gauge({ name: 'tollstream_traffic_partition_last_batch_age_seconds', help: 'Wall-clock time since the last StationTrafficBatch of a partition (windower down when large).', labelNames: ['partition'], registers: [registry] });
    const stale = new Gauge({ name: 'tollstream_traffic_stale_partitions', help: `Partitions without a batch for longer than TRAFFIC_STALE_PARTITION_AFTER: their slots cannot be evaluated (no counts are invented).`, registers: [registry] });
    const watermarkLag = new Gauge({ name: 'tollstream_traffic_watermark_lag_seconds', help: 'Wall clock minus the partition watermark.', labelNames: ['partition'], registers: [registry] });
    const referencesLoaded = new Gauge({ name: 'tollstream_traffic_reference_stations', help: 'Stations with reference data.', registers: [registry] });
    const deadLetters = new Counter({ name: 'tollstream_dead_letters_total', help: 'Inputs sent to the dead-letter stream, by reason.', labelNames: ['reason'], registers: [registry] });

    const { nc, js } = await connectServiceToBroker(config, 'traffic-anomaly');
    let referenceStore: TrafficReferenceStore;
    let detectionStore: TrafficDetectionStore;
    let mongo: MongoTrafficStores | undefined;
    if (config.TRAFFIC_STORE === 'mongodb') {
      mongo = await MongoTrafficStores.open({ uri: config.MONGODB_URI as string, database: config.MONGODB_DATABASE });
      referenceStore = mongo.references;
      detectionStore = mongo.detection;
    } else {
      referenceStore = await KvTrafficReferenceStore.open(js, { bucket: config.TRAFFIC_REFERENCE_KV_BUCKET, replicas: config.NATS_STREAM_REPLICAS });
      detectionStore = await KvTrafficDetectionStore.open(js, { bucket: config.TRAFFIC_STATE_KV_BUCKET, replicas: config.NATS_STREAM_REPLICAS });
    }
    const references = new ReferenceCache(referenceStore, config.TOLL_TX_PARTITIONS);
    referencesLoaded.set(await references.refresh());
    const refreshTimer = setInterval(() => {
      references
        .refresh()
        .then((count) => referencesLoaded.set(count))
        .catch((error: unknown) => logger.warn({ err: error }, 'reference refresh failed; keeping the previous reference data'));
    }, config.TRAFFIC_REFERENCE_REFRESH);

    const lastBatchAt = new Map<number, number>();
    const consumer = new TrafficConsumer({
      js,
      store: detectionStore,
      references,
      detector: { slotSizeMs: config.TRAFFIC_WINDOW, graceMs: config.TRAFFIC_ALERT_GRACE, allowedLatenessMs: config.TRAFFIC_ALLOWED_LATENESS, maxCatchUpMs: config.TRAFFIC_MAX_CATCH_UP },
      deadLetters: new DeadLetterPublisher(js, 'traffic-anomaly', (reason) => deadLetters.inc({ reason })),
      partitions: config.TOLL_TX_PARTITIONS,
      maxMessagesPerRound: config.TRAFFIC_MAX_MESSAGES_PER_ROUND,
      observer: {
        alertPublished: (alert) => {
          alerts.inc({ condition: alert.condition });
          const delayMs = Date.now() - (alert.endMs + config.TRAFFIC_ALERT_GRACE);
          alertDelay.observe(Math.max(0, delayMs) / 1000);
          logger.info({ alertId: alert.alertId, count: alert.count, min: alert.min, max: alert.max, afterSlotCloseMs: delayMs }, 'traffic alert published');
        },
        batch: (partition, watermarkMs) => {
          lastBatchAt.set(partition, Date.now());
          if (watermarkMs !== undefined) watermarkLag.set({ partition: String(partition) }, (Date.now() - watermarkMs) / 1000);
        },
        round: (_messages, evaluated, durationMs) => {
          evaluations.inc(evaluated);
          roundSeconds.observe(durationMs / 1000);
        },
        failed: (error) => {
          failedRounds.inc();
          logger.error({ err: error }, 'a round failed; it will be redelivered');
        },
      },
    });
    await consumer.start();

    // Wall-clock fallback: a partition whose batches stopped (windower down) cannot be evaluated; say so.
    const startedAt = Date.now();
    const staleTimer = setInterval(() => {
      let count = 0;
      for (let partition = 0; partition < config.TOLL_TX_PARTITIONS; partition++) {
        const age = Date.now() - (lastBatchAt.get(partition) ?? startedAt);
        lastBatchAge.set({ partition: String(partition) }, age / 1000);
        if (age > config.TRAFFIC_STALE_PARTITION_AFTER) count++;
      }
      stale.set(count);
    }, 1_000);

    let ready = false;
    const ops = await startOpsHttpServer({ port: config.TRAFFIC_HTTP_PORT, registry, isReady: () => ready && !nc.isClosed(), logger, tls });
    const grpcServer = await startGrpcServer({
      tls,
      host: config.TRAFFIC_GRPC_HOST,
      port: config.TRAFFIC_GRPC_PORT,
      logger,
      fileDescriptorSetBase64,
      services: [
        {
          name: 'tolls.traffic.v1.TrafficReferenceService',
          definition: TrafficReferenceServiceService,
          implementation: createTrafficReferenceService({ store: referenceStore, token: apiToken, logger }),
        },
      ],
    });
    ready = true;
    logger.info({ grpcPort: grpcServer.port, httpPort: ops.port, store: referenceStore.backend, slotMs: config.TRAFFIC_WINDOW, graceMs: config.TRAFFIC_ALERT_GRACE }, 'traffic-anomaly ready');

    return {
      stop: async () => {
        ready = false;
        clearInterval(refreshTimer);
        clearInterval(staleTimer);
        await grpcServer.shutdown(Math.max(1_000, config.SHUTDOWN_GRACE_MS - 5_000));
        await consumer.stop();
        await mongo?.close();
        await nc.drain();
        await ops.close();
      },
    };
  },
});
