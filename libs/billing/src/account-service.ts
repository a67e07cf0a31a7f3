import * as grpc from '@grpc/grpc-js';
import type {
  AccountServiceServer,
  ClearSpendingThresholdRequest,
  ClearSpendingThresholdResponse,
  GetMonthlySpendRequest,
  GetMonthlySpendResponse,
  GetSpendingThresholdRequest,
  GetSpendingThresholdResponse,
  ListMonthlySpendRequest,
  ListMonthlySpendResponse,
  MonthlySpend,
  SetSpendingThresholdRequest,
  SetSpendingThresholdResponse,
  SpendingThreshold,
} from '@tollstream/contracts';
import { grpcStatusError, hasServiceCredential, InvalidArgumentError, type Logger } from '@tollstream/service-kit';
import type { AccountSpendStore, ThresholdRecord } from '@tollstream/stores';
import { clearThreshold, currentMonthOf, monthlySpendView, setThreshold, type BillingPolicy, type MonthlySpendView } from './account-spend';
import { MONTH_PATTERN } from './months';
import type { SpendApplier } from './spend-applier';

export interface AccountApiLimits {
  /** Largest threshold accepted, in minor units. */
  maxThresholdMinor: number;
}

export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
const DEFAULT_PAGE_SIZE = 12;
const MAX_PAGE_SIZE = 120;

const knownCurrencies = new Set(Intl.supportedValuesOf('currency'));

function checkAccountId(accountId: string): void {
  if (!accountId) throw new InvalidArgumentError('account_id', 'is required');
  if (!ACCOUNT_ID_PATTERN.test(accountId)) throw new InvalidArgumentError('account_id', 'must be 1 to 64 letters, digits or . _ : -');
}

function pageTokenOf(beforeMonth: string): string {
  return Buffer.from(`before:${beforeMonth}`, 'utf8').toString('base64url');
}

function beforeMonthOf(pageToken: string): string | undefined {
  if (!pageToken) return undefined;
  const decoded = /^before:(\d{4}-\d{2})$/.exec(Buffer.from(pageToken, 'base64url').toString('utf8'));
  if (!decoded || !MONTH_PATTERN.test(decoded[1])) throw new InvalidArgumentError('page_token', 'is not a token this service issued');
  return decoded[1];
}

function thresholdMessage(accountId: string, threshold: ThresholdRecord): SpendingThreshold {
  return {
    accountId,
    amount: { amountMinor: threshold.amountMinor, currency: threshold.currency },
    version: threshold.version,
    setAt: new Date(threshold.setAtMs),
    effectiveFromMonth: threshold.effectiveFromMonth,
  };
}

function monthlySpendMessage(accountId: string, view: MonthlySpendView): MonthlySpend {
  const currency = view.threshold?.currency ?? view.currency ?? '';
  return {
    accountId,
    month: view.month,
    timeZone: view.timeZone,
    total: { amountMinor: view.totalMinor, currency },
    threshold: view.threshold ? { amountMinor: view.threshold.amountMinor, currency } : undefined,
    remaining: view.remainingMinor !== undefined ? { amountMinor: view.remainingMinor, currency } : undefined,
    breached: view.breached,
    asOf: view.asOfMs !== undefined ? new Date(view.asOfMs) : undefined,
    transactionCount: view.transactionCount,
  };
}

/**
 * tolls.accounts.v1.AccountService: thresholds and monthly spend for the mobile backend.
 * Authenticated with one service credential (bearer token, compared in constant time).
 */
export function createAccountService(options: {
  store: AccountSpendStore;
  applier: SpendApplier;
  policy: BillingPolicy;
  limits: AccountApiLimits;
  /** The mobile backend's bearer token. */
  token: string;
  logger: Logger;
  now?: () => number;
}): AccountServiceServer {
  const { store, applier, policy, limits, logger } = options;
  const now = options.now ?? Date.now;

  /** Runs one call: authentication, then the body; errors mapped to status codes. */
  const unary =
    <Req, Res>(method: string, body: (request: Req) => Promise<Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
      if (!hasServiceCredential(call.metadata, options.token)) {
        callback(grpcStatusError(grpc.status.UNAUTHENTICATED, 'the mobile backend credential is required: metadata "authorization: Bearer <token>"'));
        return;
      }
      body(call.request).then(
        (response) => callback(null, response),
        (error: unknown) => {
          if (error instanceof InvalidArgumentError) {
            callback(grpcStatusError(grpc.status.INVALID_ARGUMENT, error.message));
            return;
          }
          logger.error({ err: error, method }, 'account call failed');
          callback(grpcStatusError(grpc.status.UNAVAILABLE, 'the account store is unavailable; retry (calls are idempotent)'));
        },
      );
    };

  /** Publishes what the change put in the outbox; on failure the periodic sweep publishes it. */
  const publish = async (accountId: string, outbox: Parameters<SpendApplier['publishOutbox']>[1]) => {
    if (outbox.length === 0) return;
    await applier.publishOutbox(accountId, outbox).catch((error: unknown) => {
      logger.warn({ err: error, accountId }, 'publishing the account outbox failed; the sweep retries');
    });
  };

  return {
    setSpendingThreshold: unary('SetSpendingThreshold', async (request: SetSpendingThresholdRequest): Promise<SetSpendingThresholdResponse> => {
      checkAccountId(request.accountId);
      const threshold = request.threshold;
      if (!threshold) throw new InvalidArgumentError('threshold', 'is required');
      if (!Number.isSafeInteger(threshold.amountMinor) || threshold.amountMinor <= 0) {
        throw new InvalidArgumentError('threshold.amount_minor', 'must be a positive number of minor units');
      }
      if (threshold.amountMinor > limits.maxThresholdMinor) {
        throw new InvalidArgumentError('threshold.amount_minor', `must be at most ${limits.maxThresholdMinor}`);
      }
      if (!/^[A-Z]{3}$/.test(threshold.currency) || !knownCurrencies.has(threshold.currency)) {
        throw new InvalidArgumentError('threshold.currency', 'must be an ISO 4217 currency code such as USD');
      }
      const result = await store.update(
        request.accountId,
        setThreshold(request.accountId, { amountMinor: threshold.amountMinor, currency: threshold.currency }, policy, now()),
      );
      if (!result.ok) {
        throw new InvalidArgumentError('threshold.currency', `must be the account's currency ${result.accountCurrency}`);
      }
      applier.thresholdChanged(request.accountId, result.alertHeadroomMinor);
      await publish(request.accountId, result.outbox);
      return { threshold: thresholdMessage(request.accountId, result.threshold), breachedNow: result.breachedNow };
    }),

    getSpendingThreshold: unary('GetSpendingThreshold', async (request: GetSpendingThresholdRequest): Promise<GetSpendingThresholdResponse> => {
      checkAccountId(request.accountId);
      const document = await store.read(request.accountId, () => []);
      const threshold = document?.account.threshold;
      return { threshold: threshold ? thresholdMessage(request.accountId, threshold) : undefined };
    }),

    clearSpendingThreshold: unary('ClearSpendingThreshold', async (request: ClearSpendingThresholdRequest): Promise<ClearSpendingThresholdResponse> => {
      checkAccountId(request.accountId);
      const result = await store.update(request.accountId, clearThreshold(request.accountId, now()));
      applier.thresholdChanged(request.accountId, undefined);
      await publish(request.accountId, result.outbox);
      return { cleared: result.cleared };
    }),

    getMonthlySpend: unary('GetMonthlySpend', async (request: GetMonthlySpendRequest): Promise<GetMonthlySpendResponse> => {
      checkAccountId(request.accountId);
      if (request.month && !MONTH_PATTERN.test(request.month)) throw new InvalidArgumentError('month', 'must be YYYY-MM (or empty for the current month)');
      const nowMs = now();
      let month = request.month;
      const document = await store.read(request.accountId, (account) => [(month ||= currentMonthOf(account, policy, nowMs))]);
      month ||= currentMonthOf(document?.account, policy, nowMs);
      return { spend: monthlySpendMessage(request.accountId, monthlySpendView(document?.account, document?.months[month], month, policy)) };
    }),

    listMonthlySpend: unary('ListMonthlySpend', async (request: ListMonthlySpendRequest): Promise<ListMonthlySpendResponse> => {
      checkAccountId(request.accountId);
      if (!Number.isInteger(request.pageSize) || request.pageSize < 0 || request.pageSize > MAX_PAGE_SIZE) {
        throw new InvalidArgumentError('page_size', `must be 1 to ${MAX_PAGE_SIZE} (0 for ${DEFAULT_PAGE_SIZE})`);
      }
      const pageSize = request.pageSize || DEFAULT_PAGE_SIZE;
      const beforeMonth = beforeMonthOf(request.pageToken);
      const [document, months] = await Promise.all([
        store.read(request.accountId, () => []),
        store.listMonths(request.accountId, { beforeMonth, limit: pageSize + 1 }),
      ]);
      const page = months.slice(0, pageSize);
      return {
        months: page.map((record) => monthlySpendMessage(request.accountId, monthlySpendView(document?.account, record, record.month, policy))),
        nextPageToken: months.length > pageSize ? pageTokenOf(page[page.length - 1].month) : '',
      };
    }),
  };
}
