// --account-service: every account's threshold is set through the AccountService before sending,
// with the account token, and a rerun changes nothing (idempotent). A fake AccountService and a fake
// ingest transport keep this test in-process.
import * as grpc from '@grpc/grpc-js';
import { AccountServiceService, TransactionStatus, type AccountServiceServer, type Money } from '@tollstream/contracts';
import { buildTrafficModel } from '@tollstream/simulator';
import type { IngestTransport } from '@tollstream/station-sender';
import { runSimulation, type RunSettings } from './run';

const notUsed = (_call: unknown, callback: grpc.sendUnaryData<never>) => callback({ code: grpc.status.UNIMPLEMENTED });

describe('account thresholds', () => {
  const thresholds = new Map<string, Money>();
  const tokens = new Set<string>();
  let sets = 0;
  let server: grpc.Server;
  let port: number;

  beforeAll(async () => {
    server = new grpc.Server();
    const implementation: AccountServiceServer = {
      setSpendingThreshold: (call, callback) => {
        tokens.add(String(call.metadata.get('authorization')[0]));
        sets++;
        thresholds.set(call.request.accountId, call.request.threshold as Money);
        callback(null, { threshold: undefined, breachedNow: false });
      },
      getSpendingThreshold: (call, callback) => {
        tokens.add(String(call.metadata.get('authorization')[0]));
        const amount = thresholds.get(call.request.accountId);
        callback(null, { threshold: amount ? { accountId: call.request.accountId, amount, version: 1, setAt: undefined, effectiveFromMonth: '' } : undefined });
      },
      clearSpendingThreshold: notUsed,
      getMonthlySpend: notUsed,
      listMonthlySpend: notUsed,
    };
    server.addService(AccountServiceService, implementation);
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  });

  afterAll(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));

  const acceptEverything = (): IngestTransport => ({
    submitTransactions: async (request) => ({
      results: request.transactions.map((t) => ({ transactionId: t.transactionId, status: TransactionStatus.TRANSACTION_STATUS_ACCEPTED, rejectionCode: 0, field: '', reason: '' })),
    }),
    close: () => undefined,
  });

  const settings = (): RunSettings => ({
    seed: 'accounts', stations: 3, accounts: 120,
    ingestAddress: '127.0.0.1:1', token: 'station-token-0123456789',
    rate: 50, pattern: 'flat', durationS: 0, maxRecords: 200, backfillMs: 60_000, faults: '',
    batchSize: 100, concurrency: 2, progressIntervalMs: 60_000,
    accountService: { address: `127.0.0.1:${port}`, token: 'account-token-0123456789' },
    signal: new AbortController().signal, writeLine: () => undefined,
  });

  it('sets every threshold once, with the account token; a rerun changes nothing', async () => {
    const first = await runSimulation(settings(), acceptEverything);
    expect(first.thresholdsSet).toBe(120);
    const model = buildTrafficModel({ seed: 'accounts', stations: 3, accounts: 120 });
    expect(Object.fromEntries(thresholds)).toEqual(Object.fromEntries(model.accounts.map((a) => [a.id, { amountMinor: a.monthlyThresholdMinor, currency: 'USD' }])));
    expect([...tokens]).toEqual(['Bearer account-token-0123456789']);
    expect(first.accepted).toBe(200);

    const second = await runSimulation(settings(), acceptEverything);
    expect(second.thresholdsSet).toBe(0);
    expect(sets).toBe(120);
  });
});
