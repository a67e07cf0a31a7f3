import * as grpc from '@grpc/grpc-js';
import type {
  ListNotificationsRequest,
  ListNotificationsResponse,
  MarkReadRequest,
  MarkReadResponse,
  Notification,
  NotificationServiceServer,
  SubscribeNotificationsRequest,
  SubscribeNotificationsResponse,
} from '@tollstream/contracts';
import { grpcStatusError, hasServiceCredential, invalidArgumentError, InvalidArgumentError, retryLaterError, type Logger } from '@tollstream/service-kit';
import type { InboxStore } from '@tollstream/stores';
import type { LiveFeed } from './live-feed';
import { notificationMessage } from './notification-messages';

export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;
const MAX_MARK_READ = 100;
const BACKLOG_PAGE = 200;

function checkAccountId(accountId: string): void {
  if (!accountId) throw new InvalidArgumentError('account_id', 'is required');
  if (!ACCOUNT_ID_PATTERN.test(accountId)) throw new InvalidArgumentError('account_id', 'must be 1 to 64 letters, digits or . _ : -');
}

/** Notification ids are the account's sequence numbers as decimal strings. */
function sequenceOf(field: string, id: string): number {
  if (!/^[1-9]\d{0,14}$/.test(id)) throw new InvalidArgumentError(field, `"${id.slice(0, 40)}" is not a notification id of this service`);
  return Number(id);
}

function pageTokenOf(beforeSequence: number): string {
  return Buffer.from(`before:${beforeSequence}`, 'utf8').toString('base64url');
}

function beforeSequenceOf(pageToken: string): number | undefined {
  if (!pageToken) return undefined;
  const decoded = /^before:([1-9]\d{0,14})$/.exec(Buffer.from(pageToken, 'base64url').toString('utf8'));
  if (!decoded) throw new InvalidArgumentError('page_token', 'is not a token this service issued');
  return Number(decoded[1]);
}

export interface SubscriptionObserver {
  opened?: () => void;
  closed?: () => void;
  sent?: (notification: Notification) => void;
}

/**
 * tolls.notifications.v1.NotificationService for the mobile backend. Same authentication as the
 * AccountService: one service credential, bearer token compared in constant time.
 */
export function createNotificationService(options: {
  inbox: InboxStore;
  live: LiveFeed;
  token: string;
  logger: Logger;
  /** Safety net for a lost live message at the tail of the feed: the inbox is re-read this often. */
  subscriptionPollMs?: number;
  observer?: SubscriptionObserver;
  now?: () => number;
}): NotificationServiceServer {
  const { inbox, live, logger, observer } = options;
  const now = options.now ?? Date.now;
  const pollMs = options.subscriptionPollMs ?? 5_000;

  const authenticated = (metadata: grpc.Metadata): boolean => hasServiceCredential(metadata, options.token);
  const unauthenticated = () => grpcStatusError(grpc.status.UNAUTHENTICATED, 'the mobile backend credential is required: metadata "authorization: Bearer <token>"');
  const mapError = (error: unknown, method: string): grpc.ServiceError => {
    if (error instanceof InvalidArgumentError) return invalidArgumentError(error);
    logger.error({ err: error, method }, 'notification call failed');
    return retryLaterError(grpc.status.UNAVAILABLE, 'the notification store is unavailable; retry');
  };

  const unary =
    <Req, Res>(method: string, body: (request: Req) => Promise<Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
      if (!authenticated(call.metadata)) {
        callback(unauthenticated());
        return;
      }
      body(call.request).then(
        (response) => callback(null, response),
        (error: unknown) => callback(mapError(error, method)),
      );
    };

  return {
    listNotifications: unary('ListNotifications', async (request: ListNotificationsRequest): Promise<ListNotificationsResponse> => {
      checkAccountId(request.accountId);
      if (request.pageSize > MAX_PAGE_SIZE) throw new InvalidArgumentError('page_size', `must be at most ${MAX_PAGE_SIZE}`);
      const limit = request.pageSize || DEFAULT_PAGE_SIZE;
      const beforeSequence = beforeSequenceOf(request.pageToken);
      const page = await inbox.list(request.accountId, { beforeSequence, limit: limit + 1 });
      const notifications = page.notifications.slice(0, limit);
      const more = page.notifications.length > limit;
      return {
        notifications: notifications.map(notificationMessage),
        nextPageToken: more ? pageTokenOf(notifications[notifications.length - 1].sequence) : '',
        unreadCount: page.unreadCount,
      };
    }),

    markRead: unary('MarkRead', async (request: MarkReadRequest): Promise<MarkReadResponse> => {
      checkAccountId(request.accountId);
      if (request.notificationIds.length === 0) throw new InvalidArgumentError('notification_ids', 'at least one is required');
      if (request.notificationIds.length > MAX_MARK_READ) throw new InvalidArgumentError('notification_ids', `at most ${MAX_MARK_READ} per call`);
      const sequences = request.notificationIds.map((id, index) => sequenceOf(`notification_ids[${index}]`, id));
      return { markedCount: await inbox.markRead(request.accountId, sequences, now()) };
    }),

    subscribeNotifications: (call: grpc.ServerWritableStream<SubscribeNotificationsRequest, SubscribeNotificationsResponse>): void => {
      if (!authenticated(call.metadata)) {
        call.emit('error', unauthenticated());
        return;
      }
      const request = call.request;
      let last: number;
      try {
        checkAccountId(request.accountId);
        last = request.afterNotificationId ? sequenceOf('after_notification_id', request.afterNotificationId) : 0;
      } catch (error) {
        call.emit('error', mapError(error, 'SubscribeNotifications'));
        return;
      }
      const accountId = request.accountId;
      let closed = false;
      // Everything runs through one queue: the backlog, live notifications, gap fills; each is sent
      // only if it is the next sequence, so nothing is sent twice and nothing is skipped.
      let queue: Promise<void> = Promise.resolve();
      const enqueue = (step: () => Promise<void>) => {
        queue = queue.then(step).catch((error: unknown) => {
          if (closed) return;
          closed = true;
          call.emit('error', mapError(error, 'SubscribeNotifications'));
          cleanup();
        });
      };
      const send = (notification: Notification) => {
        if (closed) return;
        call.write({ notification });
        last = Number(notification.notificationId);
        observer?.sent?.(notification);
      };
      const catchUp = async () => {
        for (;;) {
          if (closed) return;
          const batch = await inbox.readAfter(accountId, last, BACKLOG_PAGE);
          for (const stored of batch) if (stored.sequence === last + 1) send(notificationMessage(stored));
          if (batch.length < BACKLOG_PAGE) return;
        }
      };
      // Live first (buffered by the queue), then the backlog: no gap between the two phases.
      const subscription = live.subscribe(accountId, (notification) =>
        enqueue(async () => {
          const sequence = Number(notification.notificationId);
          if (sequence <= last) return; // seen (backlog or a re-publication)
          if (sequence > last + 1) await catchUp(); // a gap: the inbox has what the feed lost
          if (sequence === last + 1) send(notification);
        }),
      );
      enqueue(catchUp);
      const poll = setInterval(() => enqueue(catchUp), pollMs);
      observer?.opened?.();
      const cleanup = () => {
        clearInterval(poll);
        subscription.unsubscribe();
      };
      const end = () => {
        if (closed) return;
        closed = true;
        cleanup();
        observer?.closed?.();
      };
      call.on('cancelled', end);
      call.on('close', end);
      call.on('error', end);
    },
  };
}
