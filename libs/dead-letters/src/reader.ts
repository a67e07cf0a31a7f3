import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { DeadLetter, Streams } from '@tollstream/contracts';
import { DeadLetterFilterError, matchesFilter, subjectOfFilter, type DeadLetterFilter } from './filter';

/** A dead letter as stored in TOLL_DLQ. */
export interface StoredDeadLetter {
  /** TOLL_DLQ stream sequence. */
  id: number;
  subject: string;
  letter: DeadLetter;
  /** Set when the message on tolls.dlq.* is not a DeadLetter at all (then `letter` is a stand-in). */
  unreadable?: string;
}

export interface ReadDeadLettersOptions {
  /** Only dead letters with a larger id (paging: the last id of the previous page). */
  afterId?: number;
  /** Only dead letters up to this id (a re-drive reads what was there when it started). */
  upToId?: number;
  /** Messages fetched per request. */
  fetchSize?: number;
}

/** A dead letter id that is not (or no longer: retention) in TOLL_DLQ. */
export class DeadLetterNotFoundError extends Error {
  override name = 'DeadLetterNotFoundError';
}

const sourceOfSubject = (subject: string): string => subject.replace(/^tolls\.dlq\./, '');

function storedOf(id: number, subject: string, data: Uint8Array): StoredDeadLetter {
  try {
    return { id, subject, letter: DeadLetter.decode(data) };
  } catch (error) {
    const letter: DeadLetter = {
      source: sourceOfSubject(subject),
      reasonCode: '',
      reason: '',
      original: Buffer.from(data),
      originalSubject: '',
      originalMsgId: '',
      stationId: '',
      deadLetteredAt: undefined,
    };
    return { id, subject, letter, unreadable: `not a tolls.stream.v1.DeadLetter: ${error instanceof Error ? error.message : String(error)}` };
  }
}

const isNotFound = (error: unknown): boolean =>
  error instanceof JetStreamApiError && (error.code === JetStreamApiCodes.NoMessageFound || error.code === JetStreamApiCodes.StreamNotFound);

/** One dead letter by id; DeadLetterNotFoundError when it is not in TOLL_DLQ. */
export async function getDeadLetter(jsm: JetStreamManager, id: number): Promise<StoredDeadLetter> {
  let message;
  try {
    message = await jsm.streams.getMessage(Streams.deadLetters, { seq: id });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  if (!message || !message.subject.startsWith('tolls.dlq.')) {
    throw new DeadLetterNotFoundError(`no dead letter ${id} in ${Streams.deadLetters} (a wrong id, or older than the retention TOLL_DLQ_RETENTION_MS)`);
  }
  return storedOf(id, message.subject, message.data);
}

/** The id of the newest dead letter, 0 when there is none. */
export async function lastDeadLetterId(jsm: JetStreamManager): Promise<number> {
  try {
    return (await jsm.streams.info(Streams.deadLetters)).state.last_seq;
  } catch (error) {
    if (isNotFound(error)) return 0;
    throw error;
  }
}

/**
 * The dead letters matching a filter, oldest first. With ids, exactly those (every id must exist);
 * else read with an ordered consumer, filtered by subject on the server when one source is asked for.
 */
export async function* readDeadLetters(
  js: JetStreamClient,
  jsm: JetStreamManager,
  filter: DeadLetterFilter,
  options: ReadDeadLettersOptions = {},
): AsyncGenerator<StoredDeadLetter> {
  const afterId = options.afterId ?? 0;
  if (filter.ids) {
    const wanted = filter.ids.filter((id) => id > afterId && (options.upToId === undefined || id <= options.upToId));
    const found = await Promise.all(wanted.map((id) => getDeadLetter(jsm, id)));
    for (const stored of found) if (matchesStored(stored, filter)) yield stored;
    return;
  }
  let state;
  try {
    state = (await jsm.streams.info(Streams.deadLetters)).state;
  } catch (error) {
    if (isNotFound(error)) return;
    throw error;
  }
  const endId = Math.min(options.upToId ?? state.last_seq, state.last_seq);
  const startId = Math.max(state.first_seq, afterId + 1);
  if (state.messages === 0 || startId > endId) return;
  const consumer = await js.consumers.get(Streams.deadLetters, {
    filter_subjects: subjectOfFilter(filter),
    ...(filter.since && afterId === 0
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: filter.since.toISOString() }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startId }),
  });
  // Dead letters are stored as they happen, so the stream is in time order give or take clock skew
  // between services: stop a minute past --until.
  const stopAfterMs = filter.until ? filter.until.getTime() + 60_000 : Number.POSITIVE_INFINITY;
  for (;;) {
    const page: Array<{ stored: StoredDeadLetter; last: boolean; storedAtMs: number }> = [];
    // A whole fetch is read before anything is yielded: the caller may take long per letter (a re-drive).
    for await (const message of await consumer.fetch({ max_messages: options.fetchSize ?? 256, expires: 2_000 })) {
      page.push({
        stored: storedOf(message.seq, message.subject, message.data),
        last: message.info.pending === 0 || message.seq >= endId,
        storedAtMs: Number(message.timestampNanos / 1_000_000n),
      });
      if (message.info.pending === 0 || message.seq >= endId) break;
    }
    for (const { stored, last, storedAtMs } of page) {
      if (stored.id > endId || storedAtMs > stopAfterMs) return;
      if (stored.id >= startId && matchesStored(stored, filter)) yield stored;
      if (last) return;
    }
    if (page.length === 0) return;
  }
}

function matchesStored(stored: StoredDeadLetter, filter: DeadLetterFilter): boolean {
  return matchesFilter(
    {
      id: stored.id,
      source: stored.letter.source || sourceOfSubject(stored.subject),
      reasonCode: stored.letter.reasonCode,
      stationId: stored.letter.stationId,
      deadLetteredAt: stored.letter.deadLetteredAt,
    },
    filter,
  );
}

/** Checks that every id of a filter is in TOLL_DLQ (before anything is done with them). */
export async function checkIdsExist(jsm: JetStreamManager, filter: DeadLetterFilter): Promise<void> {
  if (!filter.ids) return;
  const missing: number[] = [];
  for (const id of filter.ids) {
    await getDeadLetter(jsm, id).catch((error: unknown) => {
      if (error instanceof DeadLetterNotFoundError) missing.push(id);
      else throw error;
    });
  }
  if (missing.length > 0) {
    throw new DeadLetterFilterError(`no dead letter with id ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ` and ${missing.length - 20} more` : ''} in ${Streams.deadLetters}`);
  }
}
