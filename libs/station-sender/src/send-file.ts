import {
  RejectionCode,
  rejectionCodeName,
  TransactionStatus,
  type TollTransaction,
  type TransactionResult,
} from '@tollstream/contracts';
import {
  AcknowledgedPrefix,
  CheckpointWriter,
  defaultCheckpointPath,
  loadCheckpoint,
  planResume,
  readInputIdentity,
  type ResumePoint,
} from './checkpoint';
import { ClientTlsError, type ClientTlsOptions } from '@tollstream/service-kit';
import { InputFileError, SendError } from './errors';
import { createGrpcIngestTransport, grpcCodeOf, grpcDetailsOf, retryDelayAskedBy, type IngestTransport } from './ingest-transport';
import { defaultRetryPolicy, grpcStatusName, isRetryableStatus, retryDelayMs, sleep, type RetryPolicy } from './retry-policy';
import { readTransactionFile, resolveInputFormat, type InputFormat } from './transaction-file';

export interface SendOptions {
  /** NDJSON (.ndjson, .jsonl) or CSV (.csv) file of transactions. */
  inputPath: string;
  /** Overrides the format the extension names. */
  format?: InputFormat;
  /** host:port of the ingestor; used with `token` unless `transport` is given. */
  ingestAddress?: string;
  /** The station's bearer token. */
  token?: string;
  /** TLS to the ingestor (CA, client certificate); unset: plaintext. Used with `ingestAddress`. */
  tls?: ClientTlsOptions;
  /** A ready transport (tests, custom channels). The caller keeps ownership: it is not closed. */
  transport?: IngestTransport;
  /** Records per SubmitTransactions call. Default 500. */
  batchSize?: number;
  /** Calls in flight at once. Default 4. */
  inFlight?: number;
  /** Deadline of each call. Default 30 s. */
  callDeadlineMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Default `<inputPath>.checkpoint.json`. */
  checkpointPath?: string;
  /** Ignore an existing checkpoint and send from the first line. */
  restart?: boolean;
  /** Stops dispatching; calls in flight finish and are checkpointed, then the summary says `interrupted`. */
  signal?: AbortSignal;
  /** How many unparseable lines and rejected records the summary lists. Default 20. */
  maxReported?: number;
  onProgress?: (progress: SendProgress) => void;
  onRetry?: (retry: RetryNotice) => void;
  /** Jitter source; tests make it deterministic. */
  random?: () => number;
}

export interface SendCounts {
  /** Lines read by this run (blank lines and the CSV header included). */
  linesRead: number;
  /** Lines that held a transaction that could be parsed. */
  recordsRead: number;
  /** Lines that could not be parsed; skipped. */
  unparseable: number;
  /** Records submitted (each counted once, however often it was retried). */
  sent: number;
  accepted: number;
  duplicate: number;
  rejected: number;
  /** Rejected records by rejection code name (INVALID_FIELD, TOO_OLD, ...). */
  rejectedByCode: Record<string, number>;
  /** Calls repeated after a retryable gRPC error. */
  retriedCalls: number;
  /** Records sent again because the ingestor answered REJECTED / UNAVAILABLE for them. */
  resentRecords: number;
}

export interface SendProgress {
  counts: Readonly<SendCounts>;
  /** Lines with a final outcome, from the top of the file (earlier runs included). */
  linesAcknowledged: number;
  bytesAcknowledged: number;
  bytesTotal: number;
  batchesInFlight: number;
}

export interface RetryNotice {
  firstLine: number;
  lastLine: number;
  /** The attempt that is about to start (2 = first retry). */
  attempt: number;
  maxAttempts: number;
  delayMs: number;
  /** The delay the ingestor asked for (google.rpc.RetryInfo); undefined when the delay is the sender's own backoff. */
  askedDelayMs?: number;
  reason: string;
}

export interface LineProblem {
  line: number;
  reason: string;
}

export interface RejectedRecord {
  line: number;
  transactionId: string;
  /** Rejection code name, e.g. INVALID_FIELD. */
  code: string;
  field: string;
  reason: string;
}

export interface SendSummary extends SendCounts {
  inputPath: string;
  format: InputFormat;
  checkpointPath: string;
  /** Lines acknowledged by earlier runs and skipped by this one (0 when starting from the top). */
  resumedAfterLine: number;
  /** Lines with a final outcome from the top of the file, as recorded in the checkpoint. */
  linesAcknowledged: number;
  /** The whole file is acknowledged. */
  complete: boolean;
  /** Stopped early by the abort signal; rerun to resume. */
  interrupted: boolean;
  /** First `maxReported` unparseable lines. */
  parseProblems: LineProblem[];
  /** First `maxReported` rejected records. */
  rejections: RejectedRecord[];
  durationMs: number;
}

interface PendingRecord {
  line: number;
  transaction: TollTransaction;
}

interface Batch {
  records: PendingRecord[];
  firstLine: number;
  lastLine: number;
}

const emptyCounts = (): SendCounts => ({
  linesRead: 0,
  recordsRead: 0,
  unparseable: 0,
  sent: 0,
  accepted: 0,
  duplicate: 0,
  rejected: 0,
  rejectedByCode: {},
  retriedCalls: 0,
  resentRecords: 0,
});

/** REJECTION_CODE_TOO_OLD → TOO_OLD */

const isAbortError = (error: unknown): boolean => error instanceof Error && error.name === 'AbortError';

function positiveInteger(name: string, value: number | undefined, fallback: number, max: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < 1 || resolved > max) {
    throw new RangeError(`${name} must be an integer from 1 to ${max}, got ${resolved}`);
  }
  return resolved;
}

function fatalCallError(error: unknown, firstLine: number, lastLine: number): SendError {
  const code = grpcCodeOf(error);
  const status = grpcStatusName(code);
  const details = grpcDetailsOf(error);
  const where = `lines ${firstLine}-${lastLine}`;
  switch (status) {
    case 'UNAUTHENTICATED':
      return new SendError(
        `the ingestor refused the station credentials (UNAUTHENTICATED: ${details}); check the token file or STATION_TOKEN`,
        status,
        { cause: error },
      );
    case 'PERMISSION_DENIED':
      return new SendError(`the ingestor denied the request for ${where} (PERMISSION_DENIED: ${details})`, status, {
        cause: error,
      });
    case 'INVALID_ARGUMENT':
      return new SendError(
        `the ingestor refused the request for ${where} as invalid (INVALID_ARGUMENT: ${details}); ` +
          'if it names the batch size, lower --batch-size',
        status,
        { cause: error },
      );
    default:
      return code === undefined
        ? new SendError(`sending ${where} failed: ${details}`, undefined, { cause: error })
        : new SendError(`sending ${where} failed (${status}: ${details})`, status, { cause: error });
  }
}

/**
 * Sends every transaction of a file to the ingestor: batches, several calls in flight, retries
 * after the delay the ingestor asks for (google.rpc.RetryInfo) or else with backoff, and a checkpoint of the acknowledged prefix so a rerun resumes where a crashed
 * or interrupted run stopped. Resolves with the summary of the run (also when records were
 * rejected or lines unparseable); rejects with InputFileError / CheckpointError before sending,
 * or SendError (with `summary`) when the run had to stop.
 */
export async function sendFile(options: SendOptions): Promise<SendSummary> {
  const startedAt = Date.now();
  const batchSize = positiveInteger('batch size', options.batchSize, 500, 100_000);
  const inFlightLimit = positiveInteger('in-flight', options.inFlight, 4, 256);
  const callDeadlineMs = positiveInteger('call deadline', options.callDeadlineMs, 30_000, 24 * 3_600_000);
  const maxReported = options.maxReported ?? 20;
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
  positiveInteger('max attempts', policy.maxAttempts, 1, 1_000);
  const random = options.random ?? Math.random;

  const format = resolveInputFormat(options.inputPath, options.format);
  const identity = await readInputIdentity(options.inputPath).catch((error: unknown) => {
    throw error instanceof Error && error.name === 'CheckpointError'
      ? error
      : new InputFileError(`cannot read ${options.inputPath}: ${(error as Error).message}`, { cause: error });
  });
  const checkpointPath = options.checkpointPath ?? defaultCheckpointPath(options.inputPath);
  const saved = await loadCheckpoint(checkpointPath);
  const start = planResume(saved, identity, format, { restart: options.restart ?? false, checkpointPath });

  let transport = options.transport;
  const ownsTransport = transport === undefined;
  if (!transport) {
    if (!options.ingestAddress || options.token === undefined) {
      throw new SendError('an ingest address and a station token are required');
    }
    try {
      transport = createGrpcIngestTransport({ address: options.ingestAddress, token: options.token, tls: options.tls });
    } catch (error) {
      if (error instanceof ClientTlsError) throw new SendError(error.message);
      throw error;
    }
  }
  const ingest: IngestTransport = transport;

  const checkpoint = new CheckpointWriter(checkpointPath, identity, format);
  const prefix = new AcknowledgedPrefix(start);
  const counts = emptyCounts();
  const parseProblems: LineProblem[] = [];
  const rejections: RejectedRecord[] = [];
  // Stops retries and dispatching: on the caller's abort, or when one batch fails fatally.
  const stop = new AbortController();
  const onCallerAbort = () => stop.abort(options.signal?.reason);
  if (options.signal?.aborted) stop.abort(options.signal.reason);
  options.signal?.addEventListener('abort', onCallerAbort, { once: true });
  let fatal: SendError | undefined;
  const inFlight = new Set<Promise<void>>();

  const reportProgress = () =>
    options.onProgress?.({
      counts,
      linesAcknowledged: prefix.current.linesAcknowledged,
      bytesAcknowledged: prefix.current.bytesAcknowledged,
      bytesTotal: identity.size,
      batchesInFlight: inFlight.size,
    });

  const acknowledge = (rangeId: number) => {
    const advanced = prefix.complete(rangeId);
    if (advanced) checkpoint.record(advanced);
  };

  const recordResult = (record: PendingRecord, result: TransactionResult): 'final' | 'retry' => {
    switch (result.status) {
      case TransactionStatus.TRANSACTION_STATUS_ACCEPTED:
        counts.accepted += 1;
        return 'final';
      case TransactionStatus.TRANSACTION_STATUS_DUPLICATE:
        counts.duplicate += 1;
        return 'final';
      case TransactionStatus.TRANSACTION_STATUS_REJECTED: {
        if (result.rejectionCode === RejectionCode.REJECTION_CODE_UNAVAILABLE) return 'retry';
        const code = rejectionCodeName(result.rejectionCode);
        counts.rejected += 1;
        counts.rejectedByCode[code] = (counts.rejectedByCode[code] ?? 0) + 1;
        if (rejections.length < maxReported) {
          rejections.push({
            line: record.line,
            transactionId: record.transaction.transactionId,
            code,
            field: result.field,
            reason: result.reason,
          });
        }
        return 'final';
      }
      default:
        throw new SendError(
          `line ${record.line}: the ingestor returned no valid status (${result.status}) for transaction ` +
            `${record.transaction.transactionId}; is it a compatible version?`,
        );
    }
  };

  /** Resolves true once every record of the batch has a final outcome, false when stopped before. */
  const deliver = async (batch: Batch): Promise<boolean> => {
    let pending = batch.records;
    for (let attempt = 1; ; attempt += 1) {
      if (stop.signal.aborted) return false; // not acknowledged: a rerun sends it again
      let results: TransactionResult[];
      try {
        const response = await ingest.submitTransactions(
          { transactions: pending.map((record) => record.transaction) },
          new Date(Date.now() + callDeadlineMs),
        );
        results = response.results;
      } catch (error) {
        const code = grpcCodeOf(error);
        if (!isRetryableStatus(code)) throw fatalCallError(error, batch.firstLine, batch.lastLine);
        const reason = `${grpcStatusName(code)}: ${grpcDetailsOf(error)}`;
        if (attempt >= policy.maxAttempts) {
          const where = options.ingestAddress ? ` (is the ingestor at ${options.ingestAddress} up?)` : '';
          throw new SendError(
            `gave up on lines ${batch.firstLine}-${batch.lastLine} after ${attempt} attempts; last error ${reason}${where}. ` +
              'Lines acknowledged so far are in the checkpoint: rerun to resume.',
            grpcStatusName(code),
            { cause: error },
          );
        }
        counts.retriedCalls += 1;
        await waitBeforeRetry(batch, attempt, reason, retryDelayAskedBy(error));
        continue;
      }
      if (results.length !== pending.length) {
        throw new SendError(
          `lines ${batch.firstLine}-${batch.lastLine}: the ingestor answered ${results.length} results for ` +
            `${pending.length} records`,
        );
      }
      const again: PendingRecord[] = [];
      let lastUnavailable = '';
      pending.forEach((record, index) => {
        const result = results[index] as TransactionResult;
        if (result.transactionId !== '' && result.transactionId !== record.transaction.transactionId) {
          throw new SendError(
            `line ${record.line}: the ingestor answered for transaction ${result.transactionId} in the place of ` +
              `${record.transaction.transactionId}`,
          );
        }
        if (recordResult(record, result) === 'retry') {
          again.push(record);
          lastUnavailable = result.reason;
        }
      });
      reportProgress();
      if (again.length === 0) return true;
      if (attempt >= policy.maxAttempts) {
        throw new SendError(
          `gave up after ${attempt} attempts: ${again.length} record(s) of lines ${batch.firstLine}-${batch.lastLine} ` +
            `were still rejected as UNAVAILABLE (first at line ${again[0]?.line}: ${lastUnavailable || 'no reason given'}). ` +
            'Lines acknowledged so far are in the checkpoint: rerun to resume.',
          'UNAVAILABLE',
        );
      }
      counts.resentRecords += again.length;
      pending = again;
      await waitBeforeRetry(batch, attempt, `${again.length} record(s) rejected as UNAVAILABLE: ${lastUnavailable}`);
    }
  };

  // Records answered REJECTED / UNAVAILABLE carry no RetryInfo (a TransactionResult has no status details): backoff.
  const waitBeforeRetry = async (batch: Batch, attempt: number, reason: string, askedDelayMs?: number): Promise<void> => {
    const delayMs = retryDelayMs(policy, attempt, askedDelayMs, random);
    options.onRetry?.({
      firstLine: batch.firstLine,
      lastLine: batch.lastLine,
      attempt: attempt + 1,
      maxAttempts: policy.maxAttempts,
      delayMs,
      ...(askedDelayMs === undefined ? {} : { askedDelayMs }),
      reason,
    });
    await sleep(delayMs, stop.signal).catch((error: unknown) => {
      if (!isAbortError(error)) throw error;
    });
  };

  let lastRegisteredLine = start.linesAcknowledged;
  const dispatch = (records: PendingRecord[], end: ResumePoint, firstLine: number) => {
    const rangeId = prefix.register(end);
    lastRegisteredLine = end.linesAcknowledged;
    if (records.length === 0) {
      acknowledge(rangeId);
      return;
    }
    counts.sent += records.length;
    const batch: Batch = { records, firstLine, lastLine: end.linesAcknowledged };
    const delivery = deliver(batch).then(
      (finished) => {
        if (finished) acknowledge(rangeId);
      },
      (error: unknown) => {
        fatal ??= error instanceof SendError ? error : fatalCallError(error, batch.firstLine, batch.lastLine);
        stop.abort(fatal);
      },
    );
    const tracked = delivery.finally(() => {
      inFlight.delete(tracked);
      reportProgress();
    });
    inFlight.add(tracked);
  };

  let batch: PendingRecord[] = [];
  let rangeFirstLine = start.linesAcknowledged + 1;
  let lastRead: ResumePoint = start;
  let reachedEnd = false;
  try {
    reportProgress();
    const lines = readTransactionFile(options.inputPath, {
      format,
      startOffset: start.bytesAcknowledged,
      firstLineNumber: start.linesAcknowledged + 1,
    });
    for await (const item of lines) {
      if (stop.signal.aborted) break;
      counts.linesRead += 1;
      lastRead = { linesAcknowledged: item.line, bytesAcknowledged: item.endOffset };
      if (item.kind === 'record') {
        counts.recordsRead += 1;
        batch.push({ line: item.line, transaction: item.transaction });
      } else if (item.kind === 'unparseable') {
        counts.unparseable += 1;
        if (parseProblems.length < maxReported) parseProblems.push({ line: item.line, reason: item.reason });
      }
      if (batch.length >= batchSize) {
        dispatch(batch, lastRead, rangeFirstLine);
        batch = [];
        rangeFirstLine = item.line + 1;
        while (inFlight.size >= inFlightLimit) await Promise.race(inFlight);
      }
    }
    if (!stop.signal.aborted) {
      reachedEnd = true;
      // The last batch, or only the blank / unparseable lines after the last full one.
      if (batch.length > 0 || lastRead.linesAcknowledged > lastRegisteredLine) dispatch(batch, lastRead, rangeFirstLine);
    }
  } catch (error) {
    fatal ??= new SendError(error instanceof Error ? error.message : String(error), undefined, { cause: error });
    stop.abort(fatal);
  }
  while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  options.signal?.removeEventListener('abort', onCallerAbort);
  if (ownsTransport) ingest.close();

  const acknowledged = prefix.current;
  const complete = !fatal && reachedEnd && prefix.outstanding === 0;
  if (complete) checkpoint.record(acknowledged, true);
  let checkpointFailure: unknown;
  await checkpoint.flush().catch((error: unknown) => {
    checkpointFailure = error;
  });

  const summary: SendSummary = {
    inputPath: options.inputPath,
    format,
    checkpointPath,
    resumedAfterLine: start.linesAcknowledged,
    ...counts,
    rejectedByCode: { ...counts.rejectedByCode },
    linesAcknowledged: acknowledged.linesAcknowledged,
    complete,
    interrupted: !fatal && !complete,
    parseProblems,
    rejections,
    durationMs: Date.now() - startedAt,
  };
  reportProgress();
  const failure =
    fatal ??
    (checkpointFailure
      ? new SendError(`${(checkpointFailure as Error).message}; the records were sent, but a rerun would send them again`)
      : undefined);
  if (failure) {
    failure.summary = summary;
    throw failure;
  }
  return summary;
}
