import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { connectServiceToBroker, DeadLetterPublisher } from '@tollstream/messaging';
import {
  ConfigError,
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
import { alignedIn, isValidTimeZone, stationTimeZonesSchema, WindowConfigurationChangedError, Windower } from '@tollstream/windower';
import { windowerConfigSchema, type WindowerConfig } from './config';

const logger = createLogger({ service: 'windower', level: process.env['LOG_LEVEL'] });

function loadStationTimeZones(config: WindowerConfig): Record<string, string> {
  if (!config.STATION_TIME_ZONES_FILE) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(config.STATION_TIME_ZONES_FILE, 'utf8'));
  } catch (error) {
    throw new ConfigError(`STATION_TIME_ZONES_FILE ${config.STATION_TIME_ZONES_FILE}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const result = stationTimeZonesSchema.safeParse(parsed);
  if (!result.success) throw new ConfigError(`STATION_TIME_ZONES_FILE ${config.STATION_TIME_ZONES_FILE}: ${result.error.message}`);
  for (const [station, zone] of Object.entries(result.data.stations)) {
    if (!isValidTimeZone(zone)) throw new ConfigError(`STATION_TIME_ZONES_FILE: station ${station} has an unknown time zone "${zone}"`);
  }
  return result.data.stations;
}

void runService({
  name: 'windower',
  logger,
  shutdownGraceMs: windowerConfigSchema.shape.SHUTDOWN_GRACE_MS.catch(20_000).parse(process.env['SHUTDOWN_GRACE_MS']),
  start: async () => {
    const config = loadConfig(windowerConfigSchema);
    const tls = loadServiceTls(config, logger);
    const stationZones = loadStationTimeZones(config);
    const instanceId = config.WINDOWER_INSTANCE_ID ?? `${hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${randomUUID().slice(0, 8)}`;
    const processor = {
      customerSpend: {
        window: alignedIn(config.SPEND_WINDOW, config.OPERATOR_TIME_ZONE),
        outOfOrdernessMs: config.SPEND_OUT_OF_ORDERNESS,
        allowedLatenessMs: config.SPEND_ALLOWED_LATENESS,
      },
      stationTraffic: {
        window: alignedIn(config.TRAFFIC_WINDOW, config.OPERATOR_TIME_ZONE),
        outOfOrdernessMs: config.TRAFFIC_OUT_OF_ORDERNESS,
        allowedLatenessMs: config.TRAFFIC_ALLOWED_LATENESS,
      },
      idleTimeoutMs: config.WINDOW_IDLE_TIMEOUT,
      stationTimeZone: (stationId: string) => stationZones[stationId] ?? config.OPERATOR_TIME_ZONE,
      spendShards: config.SPEND_SHARDS,
      maxResultsPerMessage: config.WINDOWER_MAX_RESULTS_PER_MESSAGE,
      watermarkPublishIntervalMs: 1_000,
    };
    // Whatever shapes the results: a change means old window state must not be restored.
    const configDescription = {
      SPEND_WINDOW: processor.customerSpend,
      TRAFFIC_WINDOW: processor.stationTraffic,
      WINDOW_IDLE_TIMEOUT: processor.idleTimeoutMs,
      SPEND_SHARDS: processor.spendShards,
      OPERATOR_TIME_ZONE: config.OPERATOR_TIME_ZONE,
      stationTimeZones: Object.keys(stationZones).length,
    };
    const configFingerprint = createHash('sha256')
      .update(JSON.stringify({ ...processor, stationZones, stationTimeZone: undefined }))
      .digest('hex')
      .slice(0, 12);

    const registry = createMetricsRegistry('windower');
    const recordsIn = new Counter({ name: 'tollstream_windower_records_total', help: 'Transactions read from the transaction stream.', registers: [registry] });
    const lateRecords = new Counter({
      name: 'tollstream_windower_late_records_total',
      help: 'Transactions later than the allowed lateness of an aggregate: not in its windows, published to tolls.agg.late.<aggregate>.<partition>.',
      labelNames: ['aggregate'],
      registers: [registry],
    });
    const withoutAccount = new Counter({
      name: 'tollstream_windower_records_without_account_total',
      help: 'Transactions without a customer account (plate-only passes): counted as traffic, no spend window.',
      registers: [registry],
    });
    const resultsOut = new Counter({ name: 'tollstream_windower_results_total', help: 'Window results published (first results and amendments).', registers: [registry] });
    const emitDelay = new Histogram({
      name: 'tollstream_windower_emit_delay_seconds',
      help: 'From the input message that produced window results being appended to the results being acknowledged by the broker.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    const checkpointSeconds = new Histogram({
      name: 'tollstream_windower_checkpoint_duration_seconds',
      help: 'Time to store one partition snapshot.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    const checkpointBytes = new Gauge({ name: 'tollstream_windower_checkpoint_bytes', help: 'Size of the last snapshot per partition.', labelNames: ['partition'], registers: [registry] });
    const heartbeats = new Counter({ name: 'tollstream_windower_heartbeats_total', help: 'Heartbeats appended to idle partitions.', registers: [registry] });
    const failures = new Counter({ name: 'tollstream_windower_partition_restarts_total', help: 'Partition runs restarted from their checkpoint after a failure.', registers: [registry] });
    const deadLetters = new Counter({ name: 'tollstream_dead_letters_total', help: 'Records sent to the dead-letter stream, by reason.', labelNames: ['reason'], registers: [registry] });
    const openWindowsByPartition = new Map<number, { customerSpend: number; stationTraffic: number }>();
    const watermarkByPartition = new Map<number, number>();
    new Gauge({
      name: 'tollstream_windower_open_windows',
      help: 'Windows held in state (open, or closed but within the allowed lateness).',
      labelNames: ['aggregate'],
      registers: [registry],
      collect() {
        let spend = 0;
        let traffic = 0;
        for (const counts of openWindowsByPartition.values()) {
          spend += counts.customerSpend;
          traffic += counts.stationTraffic;
        }
        this.set({ aggregate: 'customer_spend' }, spend);
        this.set({ aggregate: 'station_traffic' }, traffic);
      },
    });
    new Gauge({
      name: 'tollstream_windower_watermark_lag_seconds',
      help: 'Wall clock minus the event-time watermark, per owned partition.',
      labelNames: ['partition'],
      registers: [registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const [partition, watermark] of watermarkByPartition) {
          if (watermark > Number.MIN_SAFE_INTEGER) this.set({ partition: String(partition) }, (now - watermark) / 1000);
        }
      },
    });
    const ownedGauge = new Gauge({ name: 'tollstream_windower_owned_partitions', help: 'Partitions this instance processes.', registers: [registry] });

    const { nc, js } = await connectServiceToBroker(config, `windower-${instanceId}`);
    const deadLetterPublisher = new DeadLetterPublisher(js, 'windower', (reason) => deadLetters.inc({ reason }));

    const windower = await Windower.start(
      js,
      deadLetterPublisher,
      {
        instanceId,
        partitions: config.TOLL_TX_PARTITIONS,
        replicas: config.NATS_STREAM_REPLICAS,
        leaseTtlMs: config.WINDOWER_LEASE_TTL,
        renewIntervalMs: config.WINDOWER_LEASE_RENEW_INTERVAL,
        processor,
        configFingerprint,
        configDescription,
        onConfigurationChange: config.WINDOWER_ON_CONFIGURATION_CHANGE,
        checkpointIntervalMs: config.WINDOWER_CHECKPOINT_INTERVAL,
        heartbeatIntervalMs: config.WINDOWER_HEARTBEAT_INTERVAL,
        maxPublishesInFlight: config.WINDOWER_MAX_PUBLISHES_IN_FLIGHT,
      },
      {
        processed: (partition, outcome, state) => {
          recordsIn.inc(outcome.records);
          if (outcome.lateForSpend > 0) lateRecords.inc({ aggregate: 'customer_spend' }, outcome.lateForSpend);
          if (outcome.lateForTraffic > 0) lateRecords.inc({ aggregate: 'station_traffic' }, outcome.lateForTraffic);
          if (outcome.withoutAccount > 0) withoutAccount.inc(outcome.withoutAccount);
          openWindowsByPartition.set(partition, state.openWindows);
          watermarkByPartition.set(partition, state.watermarkMs);
        },
        emitted: (_partition, results, delayMs) => {
          resultsOut.inc(results);
          emitDelay.observe(delayMs / 1000);
        },
        checkpointed: (partition, bytes, durationMs) => {
          checkpointSeconds.observe(durationMs / 1000);
          checkpointBytes.set({ partition: String(partition) }, bytes);
        },
        restored: (partition, fromSequence, durationMs) =>
          logger.info({ partition, fromSequence, durationMs: Math.round(durationMs) }, 'partition restored from checkpoint'),
        heartbeat: () => heartbeats.inc(),
        deadLettered: (partition, reason) => logger.warn({ partition, reason }, 'undecodable input dead-lettered'),
        failed: (partition, error) => {
          failures.inc();
          logger.warn({ partition, err: error }, 'partition run failed; restarting from its checkpoint');
        },
        ownership: (partitions) => {
          ownedGauge.set(partitions.length);
          for (const partition of [...openWindowsByPartition.keys()]) {
            if (!partitions.includes(partition)) {
              openWindowsByPartition.delete(partition);
              watermarkByPartition.delete(partition);
            }
          }
          logger.info({ partitions }, 'owned partitions changed');
        },
        leaseError: (error) => logger.warn({ err: error }, 'partition lease problem'),
      },
    ).catch((error: unknown) => {
      // Plainly on stderr, like any other configuration problem.
      throw error instanceof WindowConfigurationChangedError ? new ConfigError(`WINDOWER_ON_CONFIGURATION_CHANGE: ${error.message}`) : error;
    });

    let ready = true;
    const ops = await startOpsHttpServer({ port: config.WINDOWER_HTTP_PORT, registry, isReady: () => ready && !nc.isClosed(), logger, tls });
    logger.info({ instanceId, httpPort: ops.port, partitions: config.TOLL_TX_PARTITIONS, configFingerprint }, 'windower ready');

    return {
      stop: async () => {
        ready = false;
        // Checkpoint and release every partition so that the other instances take over at once.
        await windower.stop();
        await nc.drain();
        await ops.close();
      },
    };
  },
});
