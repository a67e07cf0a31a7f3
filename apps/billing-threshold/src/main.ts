import { createAccountService, SpendApplier, SpendConsumer, storeAccountBackend, type BillingPolicy } from '@tollstream/billing';
import { AccountServiceService, fileDescriptorSetBase64 } from '@tollstream/contracts';
import { connectServiceToBroker, DeadLetterPublisher } from '@tollstream/messaging';
import {
  Counter,
  createLogger,
  createMetricsRegistry,
  Histogram,
  loadConfig,
  loadServiceToken,
  runService,
  startGrpcServer,
  startOpsHttpServer,
} from '@tollstream/service-kit';
import { KvAccountSpendStore, MongoAccountSpendStore, type AccountSpendStore } from '@tollstream/stores';

import { billingConfigSchema } from './config';

const logger = createLogger({ service: 'billing-threshold', level: process.env['LOG_LEVEL'] });

void runService({
  name: 'billing-threshold',
  logger,
  shutdownGraceMs: billingConfigSchema.shape.SHUTDOWN_GRACE_MS.catch(20_000).parse(process.env['SHUTDOWN_GRACE_MS']),
  start: async () => {
    const config = loadConfig(billingConfigSchema);
    const apiToken = loadServiceToken(config.ACCOUNT_API_TOKEN_FILE, config.ACCOUNT_API_TOKEN, 'ACCOUNT_API_TOKEN_FILE');
    const policy: BillingPolicy = { operatorTimeZone: config.OPERATOR_TIME_ZONE, ledgerRetentionMs: config.BILLING_LEDGER_RETENTION };

    const registry = createMetricsRegistry('billing-threshold');
    const results = new Counter({
      name: 'tollstream_billing_results_total',
      help: 'Window results and late transactions by outcome (applied, amended, duplicate, superseded, currency-mismatch, month-sealed).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    const alerts = new Counter({ name: 'tollstream_billing_alerts_published_total', help: 'Spending-threshold alerts published (re-publications after a crash included).', registers: [registry] });
    const thresholdEvents = new Counter({ name: 'tollstream_billing_threshold_events_published_total', help: 'SpendingThresholdChanged events published.', registers: [registry] });
    const breachLatency = new Histogram({
      name: 'tollstream_billing_breach_latency_seconds',
      help: 'Event time of the breaching transaction to the alert confirmed by the broker (window, windower and billing together).',
      buckets: [0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 600],
      registers: [registry],
    });
    const roundSeconds = new Histogram({
      name: 'tollstream_billing_round_duration_seconds',
      help: 'One consumption round: decode, store updates, publications, acknowledgements.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    const roundMessages = new Histogram({ name: 'tollstream_billing_round_messages', help: 'Stream messages per round.', buckets: [1, 4, 16, 64, 256, 1024], registers: [registry] });
    const urgentRounds = new Counter({
      name: 'tollstream_billing_urgent_rounds_total',
      help: 'Rounds applied at once, ahead of the queue, because their spend may raise an alert.',
      registers: [registry],
    });
    const failedRounds = new Counter({ name: 'tollstream_billing_failed_rounds_total', help: 'Rounds not acknowledged because applying failed (redelivered).', registers: [registry] });
    const deadLetters = new Counter({ name: 'tollstream_dead_letters_total', help: 'Inputs sent to the dead-letter stream, by reason.', labelNames: ['reason'], registers: [registry] });

    const { nc, js, jsm } = await connectServiceToBroker(config, 'billing-threshold');

    const store: AccountSpendStore =
      config.BILLING_STORE === 'mongodb'
        ? await MongoAccountSpendStore.open({ uri: config.MONGODB_URI as string, database: config.MONGODB_DATABASE })
        : await KvAccountSpendStore.open(js, { bucket: config.BILLING_KV_BUCKET, replicas: config.NATS_STREAM_REPLICAS, cachedAccounts: config.BILLING_KV_CACHED_ACCOUNTS, cacheMaxBytes: config.BILLING_KV_CACHE_MAX_BYTES, connection: nc });

    const applier = new SpendApplier({
      store,
      js,
      policy,
      accountConcurrency: config.BILLING_ACCOUNT_CONCURRENCY,
      observer: {
        outcomes: (outcome, count) => results.inc({ outcome }, count),
        alertPublished: (alertId, latencyMs) => {
          alerts.inc();
          if (latencyMs !== undefined) breachLatency.observe(latencyMs / 1000);
          logger.info({ alertId, breachToAlertMs: latencyMs }, 'spending alert published');
        },
        thresholdEventPublished: () => thresholdEvents.inc(),
      },
    });

    // Alerts stored by an earlier run whose publication was not confirmed (a crash in between).
    const leftOver = await applier.sweepOutboxes();
    if (leftOver > 0) logger.info({ published: leftOver }, 'published outbox entries left by an earlier run');
    let sweeping = false;
    const sweepTimer = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      applier
        .sweepOutboxes()
        .catch((error: unknown) => logger.warn({ err: error }, 'outbox sweep failed'))
        .finally(() => (sweeping = false));
    }, config.BILLING_OUTBOX_SWEEP_INTERVAL);

    const consumer = new SpendConsumer({
      js,
      jsm,
      applier,
      deadLetters: new DeadLetterPublisher(js, 'billing-threshold', (reason) => deadLetters.inc({ reason })),
      spendDurable: `${config.BILLING_CONSUMER_NAME}-spend`,
      lateDurable: `${config.BILLING_CONSUMER_NAME}-late-spend`,
      ackWaitMs: config.BILLING_ACK_WAIT,
      maxMessagesPerRound: config.BILLING_MAX_MESSAGES_PER_ROUND,
      maxAckPending: config.BILLING_MAX_ACK_PENDING,
      maxRoundsInFlight: config.BILLING_MAX_ROUNDS_IN_FLIGHT,
      observer: {
        round: (messages, _entries, durationMs) => {
          roundMessages.observe(messages);
          roundSeconds.observe(durationMs / 1000);
        },
        urgentRound: () => urgentRounds.inc(),
        failed: (error) => {
          failedRounds.inc();
          logger.error({ err: error }, 'applying a round failed; it will be redelivered');
        },
      },
    });
    await consumer.start();

    let ready = false;
    const ops = await startOpsHttpServer({ port: config.BILLING_HTTP_PORT, registry, isReady: () => ready && !nc.isClosed(), logger });
    const grpcServer = await startGrpcServer({
      host: config.BILLING_GRPC_HOST,
      port: config.BILLING_GRPC_PORT,
      logger,
      fileDescriptorSetBase64,
      services: [
        {
          name: 'tolls.accounts.v1.AccountService',
          definition: AccountServiceService,
          implementation: createAccountService({
            backend: storeAccountBackend({ store, applier, policy, logger }),
            policy,
            limits: { maxThresholdMinor: config.BILLING_MAX_THRESHOLD_MINOR },
            token: apiToken,
            logger,
          }),
        },
      ],
    });
    ready = true;
    logger.info({ grpcPort: grpcServer.port, httpPort: ops.port, store: store.backend, timeZone: config.OPERATOR_TIME_ZONE }, 'billing-threshold ready');

    return {
      stop: async () => {
        ready = false;
        clearInterval(sweepTimer);
        await grpcServer.shutdown(Math.max(1_000, config.SHUTDOWN_GRACE_MS - 5_000));
        await consumer.stop();
        await store.close();
        await nc.drain();
        await ops.close();
      },
    };
  },
});
