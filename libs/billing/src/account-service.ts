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
  SetSpendingThresholdRequest,
  SetSpendingThresholdResponse,
} from '@tollstream/contracts';
import { grpcStatusError, hasServiceCredential, invalidArgumentError, InvalidArgumentError, retryLaterError, type Logger } from '@tollstream/service-kit';
import type { AccountSpendStore, MonthKey, ThresholdRecord } from '@tollstream/stores';
import { clearThreshold, currentMonthOf, monthlySpendView, setThreshold, type BillingPolicy, type ThresholdInput } from './account-spend';
import { monthlySpendMessage, thresholdMessage } from './account-views';
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

/** What the API shows of an account (whichever design keeps it). */
export interface AccountView {
  timeZone: string;
  currency?: string;
  threshold?: ThresholdRecord;
}

/** What the API shows of one month of an account. */
export interface MonthView {
  month: MonthKey;
  totalMinor: number;
  transactionCount: number;
  /** Event time of the newest transaction counted; 0 = none. */
  newestEventAtMs: number;
}

export type SetThresholdOutcome = { ok: true; threshold: ThresholdRecord; breachedNow: boolean } | { ok: false; field: string; reason: string };

/** Where thresholds are changed and accounts read: the shard state machine (ADR 0013) or the per-result store (ADR 0008). */
export interface AccountBackend {
  setThreshold(accountId: string, input: ThresholdInput): Promise<SetThresholdOutcome>;
  clearThreshold(accountId: string): Promise<{ cleared: boolean }>;
  readAccount(accountId: string): Promise<AccountView | undefined>;
  readMonth(accountId: string, month: MonthKey): Promise<MonthView | undefined>;
  /** Months newest first, only those before `beforeMonth` when given, at most `limit`. */
  listMonths(accountId: string, options: { beforeMonth?: MonthKey; limit: number }): Promise<MonthView[]>;
}

/** The backend could not answer in time; the message says what happened to the call (gRPC UNAVAILABLE). */
export class AccountBackendUnavailableError extends Error {
  override readonly name = 'AccountBackendUnavailableError';
}

/** The per-result design's backend (ADR 0008): atomic store updates, outbox published after each change. */
export function storeAccountBackend(options: { store: AccountSpendStore; applier: SpendApplier; policy: BillingPolicy; logger: Logger; now?: () => number }): AccountBackend {
  const { store, applier, policy, logger } = options;
  const now = options.now ?? Date.now;
  /** Publishes what the change put in the outbox; on failure the periodic sweep publishes it. */
  const publish = async (accountId: string, outbox: Parameters<SpendApplier['publishOutbox']>[1]) => {
    if (outbox.length === 0) return;
    await applier.publishOutbox(accountId, outbox).catch((error: unknown) => {
      logger.warn({ err: error, accountId }, 'publishing the account outbox failed; the sweep retries');
    });
  };
  return {
    setThreshold: async (accountId, input) => {
      const result = await store.update(accountId, setThreshold(accountId, input, policy, now()));
      if (!result.ok) return { ok: false, field: 'threshold.currency', reason: `must be the account's currency ${result.accountCurrency}` };
      applier.thresholdChanged(accountId, result.alertHeadroomMinor);
      await publish(accountId, result.outbox);
      return { ok: true, threshold: result.threshold, breachedNow: result.breachedNow };
    },
    clearThreshold: async (accountId) => {
      const result = await store.update(accountId, clearThreshold(accountId, now()));
      applier.thresholdChanged(accountId, undefined);
      await publish(accountId, result.outbox);
      return { cleared: result.cleared };
    },
    readAccount: async (accountId) => (await store.read(accountId, () => []))?.account,
    readMonth: async (accountId, month) => (await store.read(accountId, () => [month]))?.months[month],
    listMonths: (accountId, listOptions) => store.listMonths(accountId, listOptions),
  };
}

/**
 * tolls.accounts.v1.AccountService: thresholds and monthly spend for the mobile backend.
 * Authenticated with one service credential (bearer token, compared in constant time).
 */
export function createAccountService(options: {
  backend: AccountBackend;
  policy: BillingPolicy;
  limits: AccountApiLimits;
  /** The mobile backend's bearer token. */
  token: string;
  logger: Logger;
  now?: () => number;
}): AccountServiceServer {
  const { backend, policy, limits, logger } = options;
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
            callback(invalidArgumentError(error));
            return;
          }
          if (error instanceof AccountBackendUnavailableError) {
            logger.warn({ method, reason: error.message }, 'account call not answered in time');
            callback(retryLaterError(grpc.status.UNAVAILABLE, error.message));
            return;
          }
          logger.error({ err: error, method }, 'account call failed');
          callback(retryLaterError(grpc.status.UNAVAILABLE, 'the account store is unavailable; retry (calls are idempotent)'));
        },
      );
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
      const result = await backend.setThreshold(request.accountId, { amountMinor: threshold.amountMinor, currency: threshold.currency });
      if (!result.ok) throw new InvalidArgumentError(result.field, result.reason);
      return { threshold: thresholdMessage(request.accountId, result.threshold), breachedNow: result.breachedNow };
    }),

    getSpendingThreshold: unary('GetSpendingThreshold', async (request: GetSpendingThresholdRequest): Promise<GetSpendingThresholdResponse> => {
      checkAccountId(request.accountId);
      const threshold = (await backend.readAccount(request.accountId))?.threshold;
      return { threshold: threshold ? thresholdMessage(request.accountId, threshold) : undefined };
    }),

    clearSpendingThreshold: unary('ClearSpendingThreshold', async (request: ClearSpendingThresholdRequest): Promise<ClearSpendingThresholdResponse> => {
      checkAccountId(request.accountId);
      return backend.clearThreshold(request.accountId);
    }),

    getMonthlySpend: unary('GetMonthlySpend', async (request: GetMonthlySpendRequest): Promise<GetMonthlySpendResponse> => {
      checkAccountId(request.accountId);
      if (request.month && !MONTH_PATTERN.test(request.month)) throw new InvalidArgumentError('month', 'must be YYYY-MM (or empty for the current month)');
      const account = await backend.readAccount(request.accountId);
      const month = request.month || currentMonthOf(account, policy, now());
      const record = account ? await backend.readMonth(request.accountId, month) : undefined;
      return { spend: monthlySpendMessage(request.accountId, monthlySpendView(account, record, month, policy)) };
    }),

    listMonthlySpend: unary('ListMonthlySpend', async (request: ListMonthlySpendRequest): Promise<ListMonthlySpendResponse> => {
      checkAccountId(request.accountId);
      if (!Number.isInteger(request.pageSize) || request.pageSize < 0 || request.pageSize > MAX_PAGE_SIZE) {
        throw new InvalidArgumentError('page_size', `must be 1 to ${MAX_PAGE_SIZE} (0 for ${DEFAULT_PAGE_SIZE})`);
      }
      const pageSize = request.pageSize || DEFAULT_PAGE_SIZE;
      const beforeMonth = beforeMonthOf(request.pageToken);
      const [account, months] = await Promise.all([backend.readAccount(request.accountId), backend.listMonths(request.accountId, { beforeMonth, limit: pageSize + 1 })]);
      const page = months.slice(0, pageSize);
      return {
        months: page.map((record) => monthlySpendMessage(request.accountId, monthlySpendView(account, record, record.month, policy))),
        nextPageToken: months.length > pageSize ? pageTokenOf(page[page.length - 1].month) : '',
      };
    }),
  };
}
