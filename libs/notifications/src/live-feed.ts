import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { Notification, Subjects } from '@tollstream/contracts';
import { kvKeyOfAccount } from '@tollstream/stores';

/**
 * Fan-out of stored notifications to every notifier replica over core NATS
 * (tolls.notifications.live.<account token>). At most once by nature: subscribers never rely on it
 * alone — the inbox is the truth, a gap in sequence numbers makes them read the inbox.
 */
export class LiveFeed {
  constructor(private readonly nc: Pick<NatsConnection, 'publish' | 'subscribe'>) {}

  publish(notification: Notification): void {
    this.nc.publish(Subjects.notificationsLive(kvKeyOfAccount(notification.accountId)), Notification.encode(notification).finish());
  }

  subscribe(accountId: string, onNotification: (notification: Notification) => void): Subscription {
    return this.nc.subscribe(Subjects.notificationsLive(kvKeyOfAccount(accountId)), {
      callback: (error, message) => {
        if (error) return;
        try {
          onNotification(Notification.decode(message.data));
        } catch {
          // Not ours / undecodable: the inbox read on the next gap covers it.
        }
      },
    });
  }
}
