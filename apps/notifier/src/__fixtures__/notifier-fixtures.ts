import { createServer, type IncomingMessage, type Server } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { JetStreamClient } from '@nats-io/jetstream';
import {
  Alert,
  ListNotificationsResponse,
  MarkReadResponse,
  Notification,
  NotificationServiceClient,
  Subjects,
  TrafficCondition,
} from '@tollstream/contracts';

export const TOKEN = 'mobile-backend-token-for-tests-01';

export function spendingAlert(accountId: string, index: number, raisedAt = new Date()): Alert {
  return {
    alertId: `spending/${accountId}/2026-11/v${index}`,
    raisedAt,
    spendingThresholdBreached: {
      accountId,
      month: '2026-11',
      timeZone: 'UTC',
      thresholdMinor: 10_000,
      totalMinor: 10_250,
      currency: 'USD',
      breachedAt: raisedAt,
    },
    stationTraffic: undefined,
  };
}

export function trafficAlert(stationId: string, slot: number): Alert {
  const slotStart = new Date(Date.UTC(2026, 10, 11, 14) + slot * 1_800_000);
  return {
    alertId: `traffic/${stationId}/${slotStart.toISOString()}/below`,
    raisedAt: new Date(),
    spendingThresholdBreached: undefined,
    stationTraffic: {
      stationId,
      slotStart,
      slotEnd: new Date(slotStart.getTime() + 1_800_000),
      timeZone: 'UTC',
      condition: TrafficCondition.TRAFFIC_CONDITION_BELOW_MINIMUM,
      vehicleCount: 12,
      expectedMinimum: 100,
      expectedMaximum: 0,
      referenceVersion: 'ref-1',
    },
  };
}

export async function publishAlert(js: JetStreamClient, alert: Alert): Promise<void> {
  await js.publish(Subjects.alert(alert.spendingThresholdBreached ? 'spending' : 'traffic'), Alert.encode(alert).finish(), { msgID: alert.alertId });
}

export interface ReceivedRequest {
  at: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A real local HTTP receiver; `respond` decides per request (status, or 'hang' for a timeout). */
export async function startReceiver(respond: (request: ReceivedRequest, index: number) => number | 'hang') {
  const requests: ReceivedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = { at: Date.now(), headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(request);
      const decision = respond(request, requests.length - 1);
      if (decision === 'hang') return; // never answers: the client times out
      res.writeHead(decision, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The mobile backend's view of the NotificationService. */
export function notificationClient(address: string, token = TOKEN) {
  const client = new NotificationServiceClient(address, grpc.credentials.createInsecure());
  const metadata = () => {
    const m = new grpc.Metadata();
    if (token) m.set('authorization', `Bearer ${token}`);
    return m;
  };
  const unary =
    <Req, Res>(method: (req: Req, md: grpc.Metadata, cb: (error: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall) =>
    (request: Req): Promise<Res> =>
      new Promise((resolve, reject) => method.call(client, request, metadata(), (error, response) => (error ? reject(error) : resolve(response))));
  return {
    list: unary<{ accountId: string; pageSize?: number; pageToken?: string }, ListNotificationsResponse>((req, md, cb) =>
      client.listNotifications({ pageSize: 0, pageToken: '', ...req }, md, cb),
    ),
    markRead: unary<{ accountId: string; notificationIds: string[] }, MarkReadResponse>((req, md, cb) => client.markRead(req, md, cb)),
    /** Opens a stream; received notifications accumulate in `received`. */
    subscribe(accountId: string, afterNotificationId = '') {
      const received: Array<{ notification: Notification; at: number }> = [];
      let error: grpc.ServiceError | undefined;
      const call = client.subscribeNotifications({ accountId, afterNotificationId }, metadata());
      call.on('data', (response: { notification?: Notification }) => {
        if (response.notification) received.push({ notification: response.notification, at: Date.now() });
      });
      call.on('error', (e: grpc.ServiceError) => (error = e));
      return {
        received,
        get error() {
          return error;
        },
        ids: () => received.map((r) => Number(r.notification.notificationId)),
        cancel: () => call.cancel(),
      };
    },
    close: () => client.close(),
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
