import type { JetStreamClient } from '@nats-io/jetstream';
import { KvTrafficReferenceStore, type StationReferenceRecord, type TrafficReferenceStore } from '@tollstream/stores';
import { mergeReferenceVersion, parseReferenceFile, planReferenceChanges, type ReferenceChange } from './reference';

export interface LoadReferencesResult {
  changes: ReferenceChange[];
  applied: boolean;
}

/**
 * Validates the whole file first (any error: ReferenceFileInvalid, nothing written), then, unless
 * dryRun, merges each station version with a compare-and-set update of the station.
 */
export async function loadReferenceFile(store: TrafficReferenceStore, text: string, format: 'csv' | 'json', options: { dryRun: boolean }): Promise<LoadReferencesResult> {
  const parsed = parseReferenceFile(text, format);
  const current = new Map<string, StationReferenceRecord>();
  for (const stationId of new Set(parsed.map((version) => version.stationId))) {
    const record = await store.get(stationId);
    if (record) current.set(stationId, record);
  }
  const changes = planReferenceChanges(current, parsed);
  if (options.dryRun) return { changes, applied: false };
  for (const version of parsed) await store.update(version.stationId, (record) => mergeReferenceVersion(record, version));
  return { changes, applied: true };
}

export function formatReferenceChanges(changes: ReferenceChange[]): string {
  return changes
    .map((change) => `${change.action.padEnd(9)} ${change.stationId} effective ${change.effectiveFrom} ${change.version}${change.previousVersion ? ` (was ${change.previousVersion})` : ''}`)
    .join('\n');
}

/** The embedded reference store on a JetStream connection (for the CLI, which does not import the stores directly). */
export function openKvReferenceStore(js: JetStreamClient, options: { bucket?: string } = {}): Promise<TrafficReferenceStore> {
  return KvTrafficReferenceStore.open(js, options);
}
