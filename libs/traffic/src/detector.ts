import type { StationReferenceRecord, TrafficPartitionState, TrafficSlotRecord } from '@tollstream/stores';
import { windowsOf } from '@tollstream/windowing';
import { bandOf, versionAt } from './reference';

export type AlertCondition = 'below' | 'above' | 'back-within';

export interface TrafficAlertOut {
  /** Deterministic: traffic/<station>/<slotStartMs>/<CONDITION>/<reference version>[/…]. */
  alertId: string;
  stationId: string;
  startMs: number;
  endMs: number;
  timeZone: string;
  condition: AlertCondition;
  count: number;
  min: number;
  max?: number;
  version: string;
}

export interface DetectorWindow {
  stationId: string;
  startMs: number;
  endMs: number;
  timeZone: string;
  count: number;
  revision: number;
}

/** The reference data as the detector sees it (a snapshot refreshed from the store). */
export interface ReferenceView {
  /** Stations with reference data whose records go to this partition ("known stations"). */
  stationsOfPartition(partition: number): string[];
  get(stationId: string): StationReferenceRecord | undefined;
}

export interface DetectorOptions {
  /** Slot length of the windower's traffic windows; references with another slot length are not evaluated. */
  slotSizeMs: number;
  /** Evaluate a slot once the partition watermark >= slot end + grace. */
  graceMs: number;
  /** Slot records are kept until the watermark passes end + grace + this (the windower's allowed lateness). */
  allowedLatenessMs: number;
  /** On the first batch of a partition (or after a long gap) at most this much history is evaluated. */
  maxCatchUpMs: number;
}

export interface DetectorOutcome {
  alerts: TrafficAlertOut[];
  /** Station × slot evaluations (first evaluations and re-evaluations after amendments). */
  evaluations: number;
  windowsApplied: number;
  duplicates: number;
  /** Windows for slots already dropped from the state (after the lateness): ignored. */
  tooLate: number;
}

const conditionName = { below: 'BELOW_MINIMUM', above: 'ABOVE_MAXIMUM' } as const;

export function slotKey(stationId: string, startMs: number): string {
  return `${stationId}/${startMs}`;
}

export function newPartitionState(partition: number): TrafficPartitionState {
  return { partition, slots: {} };
}

/**
 * Applies one StationTrafficBatch of a partition to its state (mutated in place) and returns the
 * alerts to publish. Pure and deterministic: the same state and input always give the same alerts
 * (ids included), so a replay after a crash reproduces exactly what was (or was not yet) published.
 */
export function applyTrafficBatch(
  state: TrafficPartitionState,
  batch: { watermarkMs?: number; windows: DetectorWindow[] },
  references: ReferenceView,
  options: DetectorOptions,
): DetectorOutcome {
  const outcome: DetectorOutcome = { alerts: [], evaluations: 0, windowsApplied: 0, duplicates: 0, tooLate: 0 };
  if (state.evaluatedUpToMs === undefined) {
    // First input of this partition: evaluate from the earliest slot this batch speaks about.
    // (Slots that ended before it may have had windows in messages no longer retained.)
    const ends = batch.windows.map((window) => window.endMs - 1);
    const from = Math.min(batch.watermarkMs ?? Number.POSITIVE_INFINITY, ...ends);
    if (Number.isFinite(from)) state.evaluatedUpToMs = Math.max(from, (batch.watermarkMs ?? from) - options.maxCatchUpMs);
  }
  for (const window of batch.windows) {
    const key = slotKey(window.stationId, window.startMs);
    let slot = state.slots[key];
    if (!slot) {
      if (state.evaluatedUpToMs !== undefined && window.endMs + options.graceMs <= state.evaluatedUpToMs && window.endMs + options.graceMs + options.allowedLatenessMs < (state.watermarkMs ?? 0)) {
        outcome.tooLate++;
        continue;
      }
      slot = { stationId: window.stationId, startMs: window.startMs, endMs: window.endMs, timeZone: window.timeZone, count: 0, revision: 0, alertIds: [] };
      state.slots[key] = slot;
    }
    if (window.revision <= slot.revision) {
      outcome.duplicates++;
      continue;
    }
    slot.count = window.count;
    slot.revision = window.revision;
    outcome.windowsApplied++;
    if (slot.evaluation) {
      outcome.evaluations++;
      reevaluate(slot, outcome.alerts);
    } else if (state.evaluatedUpToMs !== undefined && slot.endMs + options.graceMs <= state.evaluatedUpToMs) {
      // A slot inside the evaluated range that had no record yet (e.g. its station has no reference
      // then, or it was dropped): evaluate now.
      evaluateFirst(slot, references, options, outcome);
    }
  }
  if (batch.watermarkMs !== undefined) state.watermarkMs = Math.max(state.watermarkMs ?? batch.watermarkMs, batch.watermarkMs);
  const limit = (state.watermarkMs ?? Number.NEGATIVE_INFINITY) - options.graceMs;
  const from = Math.max(state.evaluatedUpToMs ?? limit, limit - options.maxCatchUpMs);
  if (state.watermarkMs !== undefined && limit > from) {
    // Every known station of the partition, every slot ending in (from, limit]: the latest count, 0 if no window.
    for (const stationId of references.stationsOfPartition(state.partition)) {
      let t = from;
      for (;;) {
        const version = versionAt(references.get(stationId), t);
        if (!version || version.slotMinutes * 60_000 !== options.slotSizeMs) {
          // No reference (or another slot length) at t: look again at the next slot of the windower's size.
          const next = windowsOf({ kind: 'tumbling', sizeMs: options.slotSizeMs }, t, version?.timeZone ?? 'UTC')[0].endMs;
          if (next > limit) break;
          t = next;
          continue;
        }
        const bounds = windowsOf({ kind: 'tumbling', sizeMs: options.slotSizeMs }, t, version.timeZone)[0];
        if (bounds.endMs > limit) break;
        if (bounds.endMs > from) {
          const key = slotKey(stationId, bounds.startMs);
          let slot = state.slots[key];
          if (!slot) {
            slot = { stationId, startMs: bounds.startMs, endMs: bounds.endMs, timeZone: version.timeZone, count: 0, revision: 0, alertIds: [] };
            state.slots[key] = slot;
          }
          if (!slot.evaluation) evaluateFirst(slot, references, options, outcome);
        }
        t = bounds.endMs;
      }
    }
    state.evaluatedUpToMs = limit;
  }
  // Drop slots no amendment can reach any more.
  if (state.watermarkMs !== undefined) {
    for (const [key, slot] of Object.entries(state.slots)) {
      if (slot.endMs + options.graceMs + options.allowedLatenessMs < state.watermarkMs && (slot.evaluation || slot.endMs + options.graceMs <= (state.evaluatedUpToMs ?? 0))) delete state.slots[key];
    }
  }
  return outcome;
}

function evaluateFirst(slot: TrafficSlotRecord, references: ReferenceView, options: DetectorOptions, outcome: DetectorOutcome): void {
  const version = versionAt(references.get(slot.stationId), slot.startMs);
  if (!version || version.slotMinutes * 60_000 !== options.slotSizeMs) return;
  const band = bandOf(version, slot.startMs);
  if (!band) return;
  outcome.evaluations++;
  slot.evaluation = { version: version.version, min: band.min, ...(band.max !== undefined ? { max: band.max } : {}), condition: 'within' };
  reevaluate(slot, outcome.alerts);
}

/** Compares the slot's count with the band it was first evaluated against; publishes changes of condition. */
function reevaluate(slot: TrafficSlotRecord, alerts: TrafficAlertOut[]): void {
  const evaluation = slot.evaluation;
  if (!evaluation) return;
  const condition: 'below' | 'above' | 'within' =
    slot.count < evaluation.min ? 'below' : evaluation.max !== undefined && slot.count > evaluation.max ? 'above' : 'within';
  const base = {
    stationId: slot.stationId,
    startMs: slot.startMs,
    endMs: slot.endMs,
    timeZone: slot.timeZone,
    count: slot.count,
    min: evaluation.min,
    ...(evaluation.max !== undefined ? { max: evaluation.max } : {}),
    version: evaluation.version,
  };
  if (evaluation.openAlertId && condition !== evaluation.condition) {
    const alertId = `${evaluation.openAlertId}/resolved`;
    if (!slot.alertIds.includes(alertId)) {
      slot.alertIds.push(alertId);
      alerts.push({ ...base, alertId, condition: 'back-within' });
    }
    delete evaluation.openAlertId;
  }
  if (condition !== 'within' && !evaluation.openAlertId) {
    const alertId = `traffic/${slot.stationId}/${slot.startMs}/${conditionName[condition]}/${evaluation.version}`;
    evaluation.openAlertId = alertId;
    if (!slot.alertIds.includes(alertId)) {
      slot.alertIds.push(alertId);
      alerts.push({ ...base, alertId, condition });
    }
  }
  evaluation.condition = condition;
}
