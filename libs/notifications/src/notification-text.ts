import type { Alert } from '@tollstream/contracts';

/** Formats integer minor units with the currency's own number of fraction digits (display only). */
export function formatMoney(amountMinor: number, currency: string): string {
  try {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    return format.format(amountMinor / 10 ** digits);
  } catch {
    return `${amountMinor} ${currency} (minor units)`;
  }
}

/** The customer-facing content of an alert; undefined for alerts that are not for a customer's inbox. */
export function inAppContentOf(alert: Alert): { accountId: string; title: string; body: string } | undefined {
  const spending = alert.spendingThresholdBreached;
  if (!spending || !spending.accountId) return undefined;
  const total = formatMoney(spending.totalMinor, spending.currency);
  const threshold = formatMoney(spending.thresholdMinor, spending.currency);
  return {
    accountId: spending.accountId,
    title: 'Monthly spending threshold reached',
    body: `Your toll spend for ${spending.month} has reached ${total}, at or above the threshold of ${threshold} you set.`,
  };
}
