import type { MonthlySpend, SpendingThreshold } from '@tollstream/contracts';
import type { ThresholdRecord } from '@tollstream/stores';
import type { MonthlySpendView } from './account-spend';

/** The API's message of a stored threshold. */
export function thresholdMessage(accountId: string, threshold: ThresholdRecord): SpendingThreshold {
  return {
    accountId,
    amount: { amountMinor: threshold.amountMinor, currency: threshold.currency },
    version: threshold.version,
    setAt: new Date(threshold.setAtMs),
    effectiveFromMonth: threshold.effectiveFromMonth,
  };
}

export function monthlySpendMessage(accountId: string, view: MonthlySpendView): MonthlySpend {
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
