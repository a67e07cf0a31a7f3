/**
 * Every source that dead-letters, and every reason code it uses (grep `reasonCode` across libs/ and
 * apps/). The runbook (docs/operations.md) explains each one; filters are checked against this list
 * so that a typo is an error, not an empty answer.
 */
export const deadLetterSources = ['ingestor', 'windower', 'billing-threshold', 'traffic-anomaly', 'warehouse-loader', 'notifier'] as const;
export type DeadLetterSource = (typeof deadLetterSources)[number];

export interface ReasonCodeInfo {
  code: string;
  sources: readonly DeadLetterSource[];
  meaning: string;
}

export const deadLetterReasonCodes: readonly ReasonCodeInfo[] = [
  { code: 'INVALID_FIELD', sources: ['ingestor'], meaning: 'a field of the station record is missing or malformed (the reason names the field)' },
  { code: 'PERMISSION_DENIED', sources: ['ingestor'], meaning: "the station credential may not submit for the record's station" },
  { code: 'TOO_OLD', sources: ['ingestor'], meaning: 'occurred_at is older than the acceptance horizon' },
  { code: 'IN_FUTURE', sources: ['ingestor'], meaning: "occurred_at is ahead of the ingestor's clock by more than the allowed skew" },
  { code: 'UNDECODABLE', sources: ['windower', 'billing-threshold', 'traffic-anomaly', 'warehouse-loader', 'notifier'], meaning: 'the stream message is not the protobuf the consumer expects' },
  { code: 'UNKNOWN_RECORD', sources: ['billing-threshold'], meaning: 'a record kind billing does not know on a spend shard subject' },
  { code: 'INVALID_THRESHOLD_COMMAND', sources: ['billing-threshold'], meaning: 'a spending-threshold command with a bad field' },
  { code: 'INVALID_RESULT', sources: ['billing-threshold'], meaning: 'a window result or late transaction billing cannot apply (bad field)' },
  { code: 'INVALID_SPEND', sources: ['billing-threshold'], meaning: 'a spend entry the per-result engine cannot apply (bad field)' },
  { code: 'AMENDMENT_AFTER_FINAL', sources: ['billing-threshold'], meaning: "a revision of a window that billing had already made final (its earlier amount is forgotten, so the difference cannot be known)" },
  { code: 'CURRENCY_MISMATCH', sources: ['billing-threshold'], meaning: "spend in another currency than the account's" },
  { code: 'MONTH_CLOSED', sources: ['billing-threshold'], meaning: 'spend for a month closed (the ledger retention after its end has passed)' },
  { code: 'INVALID_RECORD', sources: ['warehouse-loader'], meaning: 'a record of a batch with a missing or bad field; the rest of the batch is loaded' },
  { code: 'UNKNOWN_SUBJECT', sources: ['warehouse-loader'], meaning: 'a window-result subject the loader does not know (a newer windower)' },
  { code: 'INVALID_ALERT', sources: ['warehouse-loader'], meaning: 'an alert with a missing or bad field' },
  { code: 'WAREHOUSE_REJECTED', sources: ['warehouse-loader'], meaning: 'ClickHouse refused the rows of this message, repeatedly' },
  { code: 'WEBHOOK_FAILED', sources: ['notifier'], meaning: 'a webhook target did not accept the alert after all attempts' },
];

export const knownReasonCodes: ReadonlySet<string> = new Set(deadLetterReasonCodes.map((entry) => entry.code));
