/**
 * Test traffic for billing's end-to-end suites: generated toll transactions (out of order, some too
 * late for any window, some re-sent by stations), sent through a real ingestor, an AccountService
 * client, and an independent computation of the monthly totals and alerts billing must produce.
 */
import * as grpc from '@grpc/grpc-js';
import {
  AccountServiceClient,
  type ClearSpendingThresholdRequest,
  type ClearSpendingThresholdResponse,
  type GetMonthlySpendRequest,
  type GetMonthlySpendResponse,
  type GetSpendingThresholdRequest,
  type GetSpendingThresholdResponse,
  type ListMonthlySpendRequest,
  type ListMonthlySpendResponse,
  type SetSpendingThresholdRequest,
  type SetSpendingThresholdResponse,
  VehicleClass,
  type TollTransaction,
} from '@tollstream/contracts';
import { seededRandom } from '@tollstream/testing';

export interface BillingTraffic {
  sends: TollTransaction[][];
  unique: TollTransaction[];
  accounts: string[];
  stations: string[];
}

export function generateBillingTraffic(shape: {
  seed: number;
  transactions: number;
  stations: number;
  accounts: number;
  batchSize: number;
  startMs: number;
  spanMs: number;
  /** Share of transactions far later than the windower's allowed lateness. */
  lateShare: number;
}): BillingTraffic {
  const next = seededRandom(shape.seed);
  const stations = Array.from({ length: shape.stations }, (_, i) => `st-${String(i).padStart(3, '0')}`);
  const accounts = Array.from({ length: shape.accounts }, (_, i) => `acct-${String(i).padStart(5, '0')}`);
  const unique: TollTransaction[] = [];
  for (let i = 0; i < shape.transactions; i++) {
    const nominal = shape.startMs + Math.floor((i / shape.transactions) * shape.spanMs);
    const late = next() < shape.lateShare && i > shape.transactions / 10;
    const occurredAtMs = late ? nominal - 30_000 - Math.floor(next() * 30_000) : nominal - Math.floor(next() * 800);
    const withAccount = next() >= 0.1;
    const account = accounts[Math.floor(next() * accounts.length)];
    unique.push({
      transactionId: `tx-${shape.seed}-${i}`,
      stationId: stations[Math.floor(next() * stations.length)],
      laneId: 'L1',
      tagId: withAccount ? `TAG-${account}` : '',
      plate: `P ${i % 10_000}`,
      accountId: withAccount ? account : '',
      vehicleClass: VehicleClass.VEHICLE_CLASS_CAR,
      amountMinor: 100 + Math.floor(next() * 900),
      currency: 'USD',
      occurredAt: new Date(occurredAtMs),
    });
  }
  const sends: TollTransaction[][] = [];
  for (let start = 0; start < unique.length; start += shape.batchSize) {
    sends.push(unique.slice(start, start + shape.batchSize));
    // A station re-sending a batch whose acknowledgement it lost.
    if (sends.length > 3 && next() < 0.05) sends.push(sends[sends.length - 3]);
  }
  return { sends, unique, accounts, stations };
}

/** Month totals per account ("<account>/<YYYY-MM>" in UTC) of the distinct transactions: what billing must show. */
export function expectedMonthTotals(traffic: BillingTraffic): Map<string, { totalMinor: number; count: number }> {
  const totals = new Map<string, { totalMinor: number; count: number }>();
  for (const transaction of traffic.unique) {
    if (!transaction.accountId) continue;
    const month = (transaction.occurredAt as Date).toISOString().slice(0, 7);
    const key = `${transaction.accountId}/${month}`;
    const total = totals.get(key) ?? { totalMinor: 0, count: 0 };
    total.totalMinor += transaction.amountMinor;
    total.count++;
    totals.set(key, total);
  }
  return totals;
}

/** Promise-returning AccountService client with the bearer token (or without, for the auth tests). */
export function accountClient(address: string, token: string | undefined) {
  const client = new AccountServiceClient(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  type Unary = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, value: unknown) => void) => void;
  const call =
    <Req, Res>(method: keyof AccountServiceClient) =>
    (request: Req): Promise<Res> =>
      new Promise((resolve, reject) => {
        (client[method] as unknown as Unary).call(client, request, metadata, { deadline: Date.now() + 10_000 }, (error, value) =>
          error ? reject(error) : resolve(value as Res),
        );
      });
  return {
    setSpendingThreshold: call<SetSpendingThresholdRequest, SetSpendingThresholdResponse>('setSpendingThreshold'),
    getSpendingThreshold: call<GetSpendingThresholdRequest, GetSpendingThresholdResponse>('getSpendingThreshold'),
    clearSpendingThreshold: call<ClearSpendingThresholdRequest, ClearSpendingThresholdResponse>('clearSpendingThreshold'),
    getMonthlySpend: call<GetMonthlySpendRequest, GetMonthlySpendResponse>('getMonthlySpend'),
    listMonthlySpend: call<ListMonthlySpendRequest, ListMonthlySpendResponse>('listMonthlySpend'),
    close: () => client.close(),
  };
}

