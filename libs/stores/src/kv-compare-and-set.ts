import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import { backoff, MAX_UPDATE_ATTEMPTS, StoreContentionError } from './account-spend-store';

/** Another writer changed (or created) the entry since we read it. */
export function isRevisionConflict(error: unknown): boolean {
  if (error instanceof JetStreamApiError) {
    return error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;
  }
  return /wrong last sequence|key exists/i.test(String((error as Error)?.message));
}

/** What a change of one entry writes (nothing when `value` is undefined) and answers. */
export interface EntryChange<R> {
  value: Uint8Array | undefined;
  result: R;
}

/**
 * Read-change-write of one KV entry with compare-and-set on its revision, retried on conflict: the
 * one way the embedded adapters update a document without losing a concurrent writer's change.
 * `change` gets the current entry (null when absent; deleted entries are passed as they are) and
 * may run again after a conflict, so it must not have effects other than its answer.
 */
export async function updateWithCompareAndSet<R>(
  kv: KV,
  key: string,
  describe: string,
  change: (entry: KvEntry | null) => EntryChange<R> | Promise<EntryChange<R>>,
): Promise<R> {
  for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt++) {
    const entry = await kv.get(key);
    const { value, result } = await change(entry);
    if (value === undefined) return result;
    try {
      if (!entry) await kv.create(key, value);
      else await kv.update(key, value, entry.revision);
      return result;
    } catch (error) {
      if (!isRevisionConflict(error)) throw error;
      await backoff(attempt);
    }
  }
  throw new StoreContentionError(`${describe}: no update succeeded in ${MAX_UPDATE_ATTEMPTS} attempts`);
}
