export {
  deadLetterSink,
  ensureAlertConsumer,
  startInAppConsumer,
  startWebhookConsumer,
  WebhookDeliveryLog,
  type ConsumerSettings,
  type DeadLetterSink,
  type InAppObserver,
  type RunningAlertConsumer,
  type WebhookObserver,
} from './alert-consumers';
export { LiveFeed } from './live-feed';
export { newNotificationOf, notificationMessage } from './notification-messages';
export { createNotificationService, ACCOUNT_ID_PATTERN, type SubscriptionObserver } from './notification-service';
export { formatMoney, inAppContentOf } from './notification-text';
export { alertKindOf, loadWebhookTargets, targetsFor, type AlertKindName, type WebhookTarget } from './routing';
export { IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signatureHeader, verifyWebhookSignature, webhookSignature, type VerificationResult } from './signing';
export { backoffDelayMs, defaultRetryPolicy, deliverWebhook, webhookBody, type DeliveryOutcome, type RetryPolicy } from './webhook-delivery';
