import { Alert, Notification } from '@tollstream/contracts';
import type { NewNotification, StoredNotification } from '@tollstream/stores';
import { inAppContentOf } from './notification-text';

/** The inbox record of an alert for a customer; undefined when the alert is not for an inbox. */
export function newNotificationOf(alert: Alert, nowMs: number): NewNotification | undefined {
  const content = inAppContentOf(alert);
  if (!content) return undefined;
  return { ...content, alertId: alert.alertId, payload: Buffer.from(Alert.encode(alert).finish()).toString('base64'), createdAtMs: nowMs };
}

export function notificationMessage(stored: StoredNotification): Notification {
  return {
    notificationId: String(stored.sequence),
    accountId: stored.accountId,
    alertId: stored.alertId,
    title: stored.title,
    body: stored.body,
    createdAt: new Date(stored.createdAtMs),
    readAt: stored.readAtMs !== undefined ? new Date(stored.readAtMs) : undefined,
    alert: stored.payload ? Alert.decode(Buffer.from(stored.payload, 'base64')) : undefined,
  };
}
