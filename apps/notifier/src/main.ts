import { fileDescriptorSetBase64, NotificationServiceService } from '@tollstream/contracts';
import { connectServiceToBroker } from '@tollstream/messaging';
import {
  createNotificationService,
  deadLetterSink,
  LiveFeed,
  loadWebhookTargets,
  startInAppConsumer,
  startWebhookConsumer,
  WebhookDeliveryLog,
  type RunningAlertConsumer,
  type WebhookTarget,
} from '@tollstream/notifications';
import {
  ConfigError,
  Counter,
  createLogger,
  createMetricsRegistry,
  Gauge,
  Histogram,
  loadConfig,
  loadServiceTls,
  loadServiceToken,
  runService,
  startGrpcServer,
  startOpsHttpServer,
} from '@tollstream/service-kit';
import { KvInboxStore, MongoInboxStore, type InboxStore } from '@tollstream/stores';
import { notifierConfigSchema, type NotifierConfig } from './config';

const logger = createLogger({ service: 'notifier', level: process.env['LOG_LEVEL'] });


function loadTargets(config: NotifierConfig): WebhookTarget[] {
  if (!config.NOTIFIER_WEBHOOKS_FILE) return [];
  try {
    return loadWebhookTargets(config.NOTIFIER_WEBHOOKS_FILE);
  } catch (error) {
    throw new ConfigError(`NOTIFIER_WEBHOOKS_FILE: ${(error as Error).message}`);
  }
}

void runService({
  name: 'notifier',
  logger,
  shutdownGraceMs: notifierConfigSchema.shape.SHUTDOWN_GRACE_MS.catch(20_000).parse(process.env['SHUTDOWN_GRACE_MS']),
  start: async () => {
    const config = loadConfig(notifierConfigSchema);
    const tls = loadServiceTls(config, logger);
    const apiToken = loadServiceToken(config.NOTIFICATION_API_TOKEN_FILE, config.NOTIFICATION_API_TOKEN, 'NOTIFICATION_API_TOKEN_FILE');
    const targets = loadTargets(config);

    const registry = createMetricsRegistry('notifier');
    const notifications = new Counter({ name: 'tollstream_notifier_notifications_total', help: 'Customer alerts by outcome (created, duplicate).', labelNames: ['outcome'], registers: [registry] });
    const storeLatency = new Histogram({
      name: 'tollstream_notifier_alert_to_inbox_seconds',
      help: 'Alert raised (raised_at) to notification stored and published on the live feed.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
      registers: [registry],
    });
    const webhookAttempts = new Counter({ name: 'tollstream_notifier_webhook_attempts_total', help: 'Webhook HTTP attempts by target and result.', labelNames: ['target', 'result'], registers: [registry] });
    const webhookOutcomes = new Counter({
      name: 'tollstream_notifier_webhook_deliveries_total',
      help: 'Webhook deliveries by target and outcome (delivered, dead-lettered, skipped-done).',
      labelNames: ['target', 'outcome'],
      registers: [registry],
    });
    const deadLetters = new Counter({ name: 'tollstream_dead_letters_total', help: 'Inputs sent to the dead-letter stream, by reason.', labelNames: ['reason'], registers: [registry] });
    const failures = new Counter({ name: 'tollstream_notifier_failed_alerts_total', help: 'Alerts whose handling failed (redelivered).', labelNames: ['path'], registers: [registry] });
    const subscribers = new Gauge({ name: 'tollstream_notifier_live_subscribers', help: 'Open SubscribeNotifications streams.', registers: [registry] });
    const pushed = new Counter({ name: 'tollstream_notifier_pushed_total', help: 'Notifications written to live subscribers.', registers: [registry] });

    const { nc, js, jsm } = await connectServiceToBroker(config, 'notifier');
    const inbox: InboxStore =
      config.NOTIFIER_STORE === 'mongodb'
        ? await MongoInboxStore.open({ uri: config.MONGODB_URI as string, database: config.MONGODB_DATABASE })
        : await KvInboxStore.open(js, { bucket: config.NOTIFIER_KV_BUCKET, replicas: config.NATS_STREAM_REPLICAS, maxNotificationsPerAccount: config.NOTIFIER_INBOX_MAX_PER_ACCOUNT });
    const live = new LiveFeed(nc);
    const sink = deadLetterSink(js, (reason) => deadLetters.inc({ reason }));

    const consumers: RunningAlertConsumer[] = [];
    consumers.push(
      await startInAppConsumer({
        js,
        jsm,
        inbox,
        live,
        deadLetters: sink,
        settings: { durable: `${config.NOTIFIER_CONSUMER_NAME}-inbox`, ackWaitMs: config.NOTIFIER_ACK_WAIT, concurrency: config.NOTIFIER_INBOX_CONCURRENCY },
        observer: {
          stored: (created, alert, latencyMs) => {
            notifications.inc({ outcome: created ? 'created' : 'duplicate' });
            if (created) storeLatency.observe(latencyMs / 1000);
            logger.debug({ alertId: alert.alertId, created }, 'notification stored');
          },
          error: (error) => {
            failures.inc({ path: 'inbox' });
            logger.error({ err: error }, 'storing a notification failed; the alert will be redelivered');
          },
        },
      }),
    );
    if (targets.length > 0) {
      const log = await WebhookDeliveryLog.open(js, { replicas: config.NATS_STREAM_REPLICAS });
      consumers.push(
        await startWebhookConsumer({
          js,
          jsm,
          targets,
          log,
          retry: {
            attempts: config.NOTIFIER_WEBHOOK_ATTEMPTS,
            timeoutMs: config.NOTIFIER_WEBHOOK_TIMEOUT,
            baseDelayMs: config.NOTIFIER_WEBHOOK_BACKOFF_BASE,
            maxDelayMs: config.NOTIFIER_WEBHOOK_BACKOFF_MAX,
          },
          deadLetters: sink,
          settings: { durable: `${config.NOTIFIER_CONSUMER_NAME}-webhooks`, ackWaitMs: config.NOTIFIER_ACK_WAIT, concurrency: config.NOTIFIER_WEBHOOK_CONCURRENCY },
          observer: {
            attempt: (target, result) => webhookAttempts.inc({ target, result }),
            outcome: (target, outcome, attempts, reason) => {
              webhookOutcomes.inc({ target, outcome });
              if (outcome === 'dead-lettered') logger.warn({ target, attempts, reason }, 'webhook delivery failed after the last attempt; dead-lettered');
            },
            error: (error) => {
              failures.inc({ path: 'webhooks' });
              logger.error({ err: error }, 'webhook handling failed; the alert will be redelivered');
            },
          },
        }),
      );
    }

    let ready = false;
    const ops = await startOpsHttpServer({ port: config.NOTIFIER_HTTP_PORT, registry, isReady: () => ready && !nc.isClosed(), logger, tls });
    const grpcServer = await startGrpcServer({
      tls,
      host: config.NOTIFIER_GRPC_HOST,
      port: config.NOTIFIER_GRPC_PORT,
      logger,
      fileDescriptorSetBase64,
      services: [
        {
          name: 'tolls.notifications.v1.NotificationService',
          definition: NotificationServiceService,
          implementation: createNotificationService({
            inbox,
            live,
            token: apiToken,
            logger,
            subscriptionPollMs: config.NOTIFIER_SUBSCRIPTION_POLL_INTERVAL,
            observer: { opened: () => subscribers.inc(), closed: () => subscribers.dec(), sent: () => pushed.inc() },
          }),
        },
      ],
    });
    ready = true;
    logger.info(
      { grpcPort: grpcServer.port, httpPort: ops.port, store: inbox.backend, webhookTargets: targets.map((target) => ({ name: target.name, alertKinds: target.alertKinds })) },
      'notifier ready',
    );

    return {
      stop: async () => {
        ready = false;
        await grpcServer.shutdown(Math.max(1_000, config.SHUTDOWN_GRACE_MS - 5_000));
        await Promise.all(consumers.map((consumer) => consumer.stop()));
        await inbox.close();
        await nc.drain();
        await ops.close();
      },
    };
  },
});
