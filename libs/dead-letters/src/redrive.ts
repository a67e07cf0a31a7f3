import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { rejectionCodeName, RejectionCode, TollTransaction, TransactionStatus, type TransactionResult } from '@tollstream/contracts';
import {
  backoffDelayMs,
  defaultRetryPolicy,
  grpcCodeOf,
  grpcDetailsOf,
  isRetryableStatus,
  retryDelayAskedBy,
  retryDelayMs,
  type IngestTransport,
  type RetryPolicy,
} from '@tollstream/station-sender';
import { randomUUID } from 'node:crypto';
import type { DeadLetterFilter } from './filter';
import { settledOutcomes, type RedriveLedger, type RedriveMark, type RedriveOutcome, type RedriveRoute, type RedriveRunRecord } from './ledger';
import { checkIdsExist, lastDeadLetterId, readDeadLetters, type StoredDeadLetter } from './reader';

/** Header on a republished message: the dead letter it re-drives (for tracing; consumers ignore it). */
export const REDRIVE_OF_HEADER = 'Tollstream-Redrive-Of';

/** What a re-drive will do with one dead letter. */
export type RedrivePlan =
  | { action: 'station-api'; transaction: TollTransaction }
  | { action: 'republish'; subject: string; msgId: string; data: Uint8Array }
  | { action: 'already-redriven'; mark: RedriveMark }
  | { action: 'not-redrivable'; why: string };

/**
 * Decides, without I/O, how one dead letter goes back: ingestor records through the station API
 * (the same validation, the transaction id deduplicates), whole stream messages of other sources
 * to the subject they came from under an id derived from their original message id.
 */
export function planRedrive(stored: StoredDeadLetter, mark: RedriveMark | undefined): RedrivePlan {
  if (mark && settledOutcomes.has(mark.outcome)) return { action: 'already-redriven', mark };
  if (stored.unreadable) return { action: 'not-redrivable', why: stored.unreadable };
  const { letter } = stored;
  if (letter.source === 'ingestor') {
    try {
      return { action: 'station-api', transaction: TollTransaction.decode(letter.original) };
    } catch (error) {
      return { action: 'not-redrivable', why: `the original is not a TollTransaction: ${error instanceof Error ? error.message : String(error)}` };
    }
  }
  if (!letter.originalSubject) return { action: 'not-redrivable', why: 'the dead letter does not say which subject the record came from' };
  if (letter.originalSubject.startsWith('tolls.tx.')) {
    return {
      action: 'not-redrivable',
      why: 'records of the transaction stream are immutable and every consumer would read a republished batch again; transactions enter only through the station API (export and send, or replay the consumer)',
    };
  }
  if (letter.originalSubject.startsWith('tolls.dlq.')) return { action: 'not-redrivable', why: 'a dead letter of a dead letter' };
  if (!letter.originalMsgId) {
    return {
      action: 'not-redrivable',
      why: 'the dead letter holds one record of a stream message (or predates original_msg_id), not a whole message that can be republished: fix the cause and replay the consumer (docs/operations.md)',
    };
  }
  return { action: 'republish', subject: letter.originalSubject, msgId: `redrive/${letter.originalMsgId}`, data: letter.original };
}

export interface RedriveProgress {
  /** Dead letters selected by the filter that this run acts on. */
  total: number;
  done: number;
  counts: RedriveCounts;
}

export type RedriveCounts = RedriveRunRecord['counts'];

export interface RedriveItemReport {
  id: number;
  source: string;
  reasonCode: string;
  stationId: string;
  action: RedrivePlan['action'];
  /** The outcome (after a run), or what a dry run would do. */
  outcome?: RedriveOutcome;
  detail: string;
}

export interface RedriveSummary {
  runId: string;
  dryRun: boolean;
  selected: number;
  counts: RedriveCounts;
  items: RedriveItemReport[];
  incomplete: boolean;
}

export interface RedriveOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  ledger: RedriveLedger;
  filter: DeadLetterFilter;
  /** Who re-drives (recorded with every mark). */
  by: string;
  dryRun?: boolean;
  /** The station API, needed when ingestor dead letters are selected (not for a dry run). */
  stationApi?: () => IngestTransport;
  /** Records per SubmitTransactions call. */
  batchSize?: number;
  callDeadlineMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Item reports kept in the summary (the counts are always complete). */
  maxReported?: number;
  signal?: AbortSignal;
  onProgress?: (progress: RedriveProgress) => void;
  now?: () => Date;
  sleep?: (ms: number) => Promise<void>;
}

/** The re-drive cannot go on: credentials, an ingestor that stays unavailable, a broker error. */
export class RedriveError extends Error {
  override name = 'RedriveError';
  constructor(
    message: string,
    readonly summary: RedriveSummary,
  ) {
    super(message);
  }
}

const emptyCounts = (): RedriveCounts => ({
  accepted: 0,
  duplicate: 0,
  'rejected-again': 0,
  republished: 0,
  failed: 0,
  'not-redrivable': 0,
  'already-redriven': 0,
});

const filterRecord = (filter: DeadLetterFilter): Record<string, unknown> =>
  Object.fromEntries(Object.entries(filter).map(([key, value]) => [key, value instanceof Date ? value.toISOString() : value]));

/**
 * Re-drives the dead letters a filter selects, as they were when the run started (dead letters a
 * re-drive itself causes are not picked up by the same run). Each one is marked in the ledger after
 * its outcome is known; a run killed half-way is safe to run again: the station API answers
 * DUPLICATE for what was stored, and a republish reuses its message id.
 */
export async function redriveDeadLetters(options: RedriveOptions): Promise<RedriveSummary> {
  const now = options.now ?? (() => new Date());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const maxReported = options.maxReported ?? 1_000;
  const runId = `${now().toISOString().replace(/[-:.]/g, '')}-${randomUUID().slice(0, 8)}`;
  const startedAt = now().toISOString();
  const summary: RedriveSummary = { runId, dryRun: options.dryRun === true, selected: 0, counts: emptyCounts(), items: [], incomplete: false };

  await checkIdsExist(options.jsm, options.filter);
  const upToId = await lastDeadLetterId(options.jsm);
  const work: Array<{ stored: StoredDeadLetter; plan: RedrivePlan }> = [];
  const planChunk = async (chunk: StoredDeadLetter[]) => {
    // The marks of a chunk are read concurrently: one KV read each, the cost of a re-drive run's start.
    const marks = await Promise.all(chunk.map((stored) => options.ledger.markOf(stored.id)));
    chunk.forEach((stored, index) => {
      const plan = planRedrive(stored, marks[index]);
      if (plan.action === 'already-redriven' || plan.action === 'not-redrivable') {
        summary.counts[plan.action]++;
        report(summary, maxReported, stored, plan, undefined, plan.action === 'already-redriven' ? `${plan.mark.outcome} by ${plan.mark.by} at ${plan.mark.at}` : plan.why);
      } else {
        work.push({ stored, plan });
      }
    });
  };
  let chunk: StoredDeadLetter[] = [];
  for await (const stored of readDeadLetters(options.js, options.jsm, options.filter, { upToId })) {
    summary.selected++;
    chunk.push(stored);
    if (chunk.length === 256) {
      await planChunk(chunk);
      chunk = [];
    }
  }
  await planChunk(chunk);
  const total = work.length;
  let done = 0;
  const progress = () => options.onProgress?.({ total, done, counts: { ...summary.counts } });
  progress();

  if (options.dryRun) {
    for (const { stored, plan } of work) {
      report(summary, maxReported, stored, plan, undefined, plan.action === 'republish' ? `would republish to ${plan.subject}` : 'would submit through the station API');
    }
    summary.items.sort((a, b) => a.id - b.id);
    return summary;
  }

  const marked = async (stored: StoredDeadLetter, plan: RedrivePlan, route: RedriveRoute, outcome: RedriveOutcome, detail: string) => {
    await options.ledger.mark(stored.id, { outcome, route, detail, by: options.by, at: now().toISOString(), runId });
    summary.counts[outcome]++;
    report(summary, maxReported, stored, plan, outcome, detail);
    done++;
  };
  const finish = async () => {
    await options.ledger.recordRun({
      runId,
      by: options.by,
      startedAt,
      finishedAt: now().toISOString(),
      filter: filterRecord(options.filter),
      selected: summary.selected,
      counts: summary.counts,
      incomplete: summary.incomplete,
    });
  };

  let transport: IngestTransport | undefined;
  try {
    const station = work.filter((item): item is { stored: StoredDeadLetter; plan: Extract<RedrivePlan, { action: 'station-api' }> } => item.plan.action === 'station-api');
    const republish = work.filter((item): item is { stored: StoredDeadLetter; plan: Extract<RedrivePlan, { action: 'republish' }> } => item.plan.action === 'republish');
    for (const { stored, plan } of republish) {
      if (options.signal?.aborted) break;
      const header = headers();
      header.set(REDRIVE_OF_HEADER, String(stored.id));
      const ack = await options.js.publish(plan.subject, plan.data, { msgID: plan.msgId, headers: header });
      await marked(stored, plan, 'republish', 'republished', `${plan.subject} sequence ${ack.seq}${ack.duplicate ? ' (already republished: deduplicated)' : ''}`);
      progress();
    }
    if (station.length > 0 && !options.signal?.aborted) {
      if (!options.stationApi) throw new Error('ingestor dead letters are selected: a station API address and token are needed');
      transport = options.stationApi();
      const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
      const batchSize = options.batchSize ?? 100;
      for (let start = 0; start < station.length && !options.signal?.aborted; start += batchSize) {
        let pending = station.slice(start, start + batchSize);
        for (let attempt = 1; pending.length > 0; attempt++) {
          let results: TransactionResult[];
          try {
            const response = await transport.submitTransactions(
              { transactions: pending.map((item) => item.plan.transaction) },
              new Date(Date.now() + (options.callDeadlineMs ?? 30_000)),
            );
            results = response.results;
            if (results.length !== pending.length) throw new Error(`the ingestor answered ${results.length} results for ${pending.length} records`);
          } catch (error) {
            const code = grpcCodeOf(error);
            if (!isRetryableStatus(code)) throw new Error(`the station API refused the re-drive: ${grpcDetailsOf(error)}`);
            if (attempt >= policy.maxAttempts) {
              await Promise.all(pending.map((item) => marked(item.stored, item.plan, 'station-api', 'failed', `the ingestor stayed unavailable: ${grpcDetailsOf(error)}`)));
              progress();
              break;
            }
            // The ingestor's google.rpc.RetryInfo when it sent one, as for `tollstream send`.
            await sleep(retryDelayMs(policy, attempt, retryDelayAskedBy(error)));
            continue;
          }
          const retry: typeof pending = [];
          const marking: Array<Promise<void>> = [];
          for (const [index, result] of results.entries()) {
            const item = pending[index];
            if (result.status === TransactionStatus.TRANSACTION_STATUS_ACCEPTED) marking.push(marked(item.stored, item.plan, 'station-api', 'accepted', `stored as ${result.transactionId}`));
            else if (result.status === TransactionStatus.TRANSACTION_STATUS_DUPLICATE) marking.push(marked(item.stored, item.plan, 'station-api', 'duplicate', 'already stored'));
            else if (result.rejectionCode === RejectionCode.REJECTION_CODE_UNAVAILABLE) {
              if (attempt >= policy.maxAttempts) marking.push(marked(item.stored, item.plan, 'station-api', 'failed', result.reason));
              else retry.push(item);
            } else {
              marking.push(marked(item.stored, item.plan, 'station-api', 'rejected-again', `${rejectionCodeName(result.rejectionCode)}: ${result.reason}`));
            }
          }
          // The batch's marks are written together (one KV put each) before the next batch is sent.
          await Promise.all(marking);
          progress();
          pending = retry;
          if (pending.length > 0) await sleep(backoffDelayMs(policy, attempt));
        }
      }
    }
    summary.incomplete = options.signal?.aborted === true && done < total;
  } catch (error) {
    summary.incomplete = true;
    await finish().catch(() => undefined);
    throw new RedriveError(error instanceof Error ? error.message : String(error), summary);
  } finally {
    transport?.close();
  }
  await finish();
  summary.items.sort((a, b) => a.id - b.id);
  return summary;
}

function report(summary: RedriveSummary, maxReported: number, stored: StoredDeadLetter, plan: RedrivePlan, outcome: RedriveOutcome | undefined, detail: string): void {
  if (summary.items.length >= maxReported) return;
  summary.items.push({
    id: stored.id,
    source: stored.letter.source,
    reasonCode: stored.letter.reasonCode,
    stationId: stored.letter.stationId,
    action: plan.action,
    ...(outcome ? { outcome } : {}),
    detail,
  });
}
