import { createHash } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Alert, DeadLetter, Streams, Subjects } from '@tollstream/contracts';
import { originalMsgIdOf } from '@tollstream/messaging';
import type { InboxStore } from '@tollstream/stores';
import type { LiveFeed } from './live-feed';
import { newNotificationOf, notificationMessage } from './notification-messages';
import { targetsFor, type WebhookTarget } from './routing';
import { deliverWebhook, type DeliveryOutcome, type RetryPolicy } from './webhook-delivery';

export interface ConsumerSettings {
  durable: string;
  ackWaitMs: number;
  /** Alerts processed at once (each one's store write / webhook deliveries run concurrently). */
  concurrency: number;
}

/** Creates (or adjusts) a durable pull consumer on TOLL_ALERTS for all alert kinds. */
export async function ensureAlertConsumer(jsm: JetStreamManager, js: JetStreamClient, settings: ConsumerSettings) {
  const ackWait = settings.ackWaitMs * 1_000_000;
  const maxAckPending = Math.max(settings.concurrency * 4, 64);
  try {
    const info = await jsm.consumers.info(Streams.alerts, settings.durable);
    if (info.config.ack_wait !== ackWait || info.config.max_ack_pending !== maxAckPending) {
      await jsm.consumers.update(Streams.alerts, settings.durable, { ack_wait: ackWait, max_ack_pending: maxAckPending });
    }
  } catch (error) {
    if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.ConsumerNotFound) throw error;
    try {
      await jsm.consumers.add(Streams.alerts, {
        durable_name: settings.durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: Subjects.alertsAll,
        ack_wait: ackWait,
        max_ack_pending: maxAckPending,
        max_deliver: -1,
      });
    } catch (addError) {
      await jsm.consumers.info(Streams.alerts, settings.durable).catch(() => {
        throw addError;
      });
    }
  }
  return js.consumers.get(Streams.alerts, settings.durable);
}

export interface RunningAlertConsumer {
  /** Stops pulling; alerts in hand finish and are acknowledged. */
  stop(): Promise<void>;
}

/**
 * Pulls alerts and handles up to `concurrency` at once; each is acknowledged only after its handler
 * resolved, a failed one is redelivered (nak with delay). While a handler runs longer than half the
 * ack wait (webhook retries), the message is kept in progress (`working()`).
 */
async function runConcurrently(
  js: JetStreamClient,
  jsm: JetStreamManager,
  settings: ConsumerSettings,
  handle: (alert: Alert, raw: JsMsg) => Promise<void>,
  onUndecodable: (raw: JsMsg, error: Error) => Promise<void>,
  onError: (error: unknown) => void,
): Promise<RunningAlertConsumer> {
  const consumer = await ensureAlertConsumer(jsm, js, settings);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: settings.concurrency * 2 });
  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const raw of messages) {
      while (inFlight.size >= settings.concurrency) await Promise.race(inFlight);
      const task = (async () => {
        let alert: Alert;
        try {
          alert = Alert.decode(raw.data);
          if (!alert.alertId) throw new Error('alert_id is empty');
        } catch (error) {
          await onUndecodable(raw, error as Error);
          raw.ack();
          return;
        }
        const keepAlive = setInterval(() => raw.working(), Math.max(500, settings.ackWaitMs / 2));
        try {
          await handle(alert, raw);
          raw.ack();
        } catch (error) {
          onError(error);
          raw.nak(1_000);
        } finally {
          clearInterval(keepAlive);
        }
      })().catch(onError);
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    }
  })();
  return {
    async stop() {
      await messages.close().catch(() => undefined);
      await loop;
      await Promise.all(inFlight);
    },
  };
}

export interface InAppObserver {
  stored?: (created: boolean, alert: Alert, latencyMs: number) => void;
  error?: (error: unknown) => void;
}

/**
 * In-app delivery: every customer alert becomes exactly one inbox notification (the store
 * deduplicates by alert id), then is published on the live feed. The live publication happens for
 * a duplicate too: if an earlier run crashed between the write and the publication, the
 * redelivered alert publishes it (subscribers skip sequences they have).
 */
export async function startInAppConsumer(options: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  inbox: InboxStore;
  live: LiveFeed;
  settings: ConsumerSettings;
  deadLetters: DeadLetterSink;
  observer?: InAppObserver;
  now?: () => number;
}): Promise<RunningAlertConsumer> {
  const now = options.now ?? Date.now;
  // Appends of one account are serialized in this process: they would only conflict in the store
  // (compare-and-set retries) and could not run in parallel anyway.
  const accountTails = new Map<string, Promise<unknown>>();
  const serialized = <T>(accountId: string, step: () => Promise<T>): Promise<T> => {
    const previous = accountTails.get(accountId) ?? Promise.resolve();
    const run = previous.then(step, step);
    const tail = run.catch(() => undefined);
    accountTails.set(accountId, tail);
    void tail.then(() => {
      if (accountTails.get(accountId) === tail) accountTails.delete(accountId);
    });
    return run;
  };
  return runConcurrently(
    options.js,
    options.jsm,
    options.settings,
    async (alert) => {
      const record = newNotificationOf(alert, now());
      if (!record) return;
      const { notification, created } = await serialized(record.accountId, () => options.inbox.append(record));
      if (notification.sequence > 0) options.live.publish(notificationMessage(notification));
      options.observer?.stored?.(created, alert, alert.raisedAt ? now() - alert.raisedAt.getTime() : 0);
    },
    (raw, error) => options.deadLetters.undecodable(raw, error),
    (error) => options.observer?.error?.(error),
  );
}

/** Where failures go: tolls.dlq.notifier. */
export interface DeadLetterSink {
  undecodable(raw: JsMsg, error: Error): Promise<void>;
  webhookFailed(alert: Alert, target: string, outcome: DeliveryOutcome): Promise<void>;
}

export function deadLetterSink(js: JetStreamClient, onPublished: (reasonCode: string) => void): DeadLetterSink {
  const publish = async (reasonCode: string, reason: string, original: Uint8Array, originalSubject: string, msgID: string, originalMsgId = '') => {
    const letter: DeadLetter = {
      source: 'notifier',
      reasonCode,
      reason,
      original: Buffer.from(original),
      originalSubject,
      originalMsgId,
      stationId: '',
      deadLetteredAt: new Date(),
    };
    await js.publish(Subjects.deadLetter('notifier'), DeadLetter.encode(letter).finish(), { msgID });
    onPublished(reasonCode);
  };
  return {
    undecodable: (raw, error) =>
      publish('UNDECODABLE', `cannot decode alert: ${error.message}`, raw.data, raw.subject, `notifier/undecodable/${createHash('sha256').update(raw.data).digest('base64url')}`, originalMsgIdOf(raw)),
    webhookFailed: (alert, target, outcome) =>
      publish(
        'WEBHOOK_FAILED',
        `webhook ${target}: ${outcome.reason ?? 'failed'} (${outcome.attempts} attempt${outcome.attempts === 1 ? '' : 's'})`,
        Alert.encode(alert).finish(),
        Subjects.alert(alert.spendingThresholdBreached ? 'spending' : 'traffic'),
        `notifier/webhook/${target}/${alert.alertId}`,
      ),
  };
}

/** Durable outcome of one (alert, target): a restart does not re-send what was delivered or dead-lettered. */
export class WebhookDeliveryLog {
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, options: { bucket?: string; replicas?: number; ttlMs?: number } = {}): Promise<WebhookDeliveryLog> {
    const kv = await new Kvm(js).create(options.bucket ?? 'notifier-webhook-deliveries', {
      history: 1,
      replicas: options.replicas ?? 1,
      ttl: options.ttlMs ?? 8 * 86_400_000,
    });
    return new WebhookDeliveryLog(kv);
  }

  static keyOf(alertId: string, target: string): string {
    return createHash('sha256').update(target).update('\0').update(alertId).digest('hex');
  }

  async done(alertId: string, target: string): Promise<boolean> {
    const entry = await this.kv.get(WebhookDeliveryLog.keyOf(alertId, target));
    return entry !== null && entry.operation === 'PUT';
  }

  async record(alertId: string, target: string, outcome: 'delivered' | 'dead-lettered', attempts: number): Promise<void> {
    await this.kv.put(WebhookDeliveryLog.keyOf(alertId, target), JSON.stringify({ alertId, target, outcome, attempts, atMs: Date.now() }));
  }
}

export interface WebhookObserver {
  attempt?: (target: string, result: 'ok' | 'error', detail: string) => void;
  outcome?: (target: string, outcome: 'delivered' | 'dead-lettered' | 'skipped-done', attempts: number, reason?: string) => void;
  error?: (error: unknown) => void;
}

/**
 * Webhook delivery, on its own durable consumer so a slow receiver never delays in-app
 * notifications. For each target whose rule matches: skip if the log says it is done, else deliver
 * with retries; after the last attempt dead-letter (WEBHOOK_FAILED) with the reason; record the
 * outcome; acknowledge the alert when every target has an outcome. At least once per target: a
 * crash between a delivery and its record re-sends it (same Idempotency-Key = alert id).
 */
export async function startWebhookConsumer(options: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  targets: readonly WebhookTarget[];
  log: WebhookDeliveryLog;
  retry: RetryPolicy;
  settings: ConsumerSettings;
  deadLetters: DeadLetterSink;
  observer?: WebhookObserver;
}): Promise<RunningAlertConsumer> {
  const { observer } = options;
  return runConcurrently(
    options.js,
    options.jsm,
    options.settings,
    async (alert, raw) => {
      await Promise.all(
        targetsFor(alert, options.targets).map(async (target) => {
          if (await options.log.done(alert.alertId, target.name)) {
            observer?.outcome?.(target.name, 'skipped-done', 0);
            return;
          }
          const outcome = await deliverWebhook(target, alert, options.retry, {
            onAttempt: (result, _attempt, detail) => observer?.attempt?.(target.name, result, detail),
            heartbeat: () => raw.working(),
          });
          if (!outcome.delivered) await options.deadLetters.webhookFailed(alert, target.name, outcome);
          await options.log.record(alert.alertId, target.name, outcome.delivered ? 'delivered' : 'dead-lettered', outcome.attempts);
          observer?.outcome?.(target.name, outcome.delivered ? 'delivered' : 'dead-lettered', outcome.attempts, outcome.reason);
        }),
      );
    },
    async () => undefined, // the in-app consumer dead-letters undecodable alerts once
    (error) => observer?.error?.(error),
  );
}
