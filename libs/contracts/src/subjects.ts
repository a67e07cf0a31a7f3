/**
 * Names of the streams and subjects every service agrees on. The topology itself (retention,
 * replicas, consumers) is declared in @tollstream/messaging; the names live here with the contracts.
 */
export const Streams = {
  /** Every accepted toll transaction, partitioned by station: tolls.tx.<partition>. */
  transactions: 'TOLL_TX',
  /** Records that could not be accepted or processed, with the reason: tolls.dlq.<source>. */
  deadLetters: 'TOLL_DLQ',
} as const;

export const Subjects = {
  transactionsAll: 'tolls.tx.>',
  transactionPartition: (partition: number): string => `tolls.tx.${partition}`,
  deadLettersAll: 'tolls.dlq.>',
  deadLetter: (source: string): string => `tolls.dlq.${source}`,
} as const;

/** Parses the partition number out of a tolls.tx.<partition> subject; undefined if it is not one. */
export function partitionOfSubject(subject: string): number | undefined {
  const match = /^tolls\.tx\.(\d+)$/.exec(subject);
  return match ? Number(match[1]) : undefined;
}
