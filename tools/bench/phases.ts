/** The bench's phases and --only. */
export const PHASES = ['ingest', 'windower', 'warehouse', 'billing', 'traffic', 'notifier', 'pipeline'];
/** Phases that run only when --only names them (not part of a full run). */
export const ON_REQUEST_PHASES = ['ingest-durability'];

/** The phases that measure a stage alone, and the stage's process name in the pipeline phase. */
export const STAGE_PHASES: ReadonlyArray<readonly [phase: string, stage: string]> = [
  ['ingest', 'ingestor'],
  ['windower', 'windower'],
  ['warehouse', 'warehouse-loader'],
  ['billing', 'billing-threshold'],
];

/** The phases of --only (comma-separated, e.g. "ingest,billing,pipeline"); undefined: all phases. */
export function parseOnly(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const phases = value.split(',').map((phase) => phase.trim());
  const known = [...PHASES, ...ON_REQUEST_PHASES];
  const unknown = phases.filter((phase) => !known.includes(phase));
  if (unknown.length > 0) throw new Error(`--only: unknown phase ${unknown.map((phase) => JSON.stringify(phase)).join(', ')}; expected phases among ${known.join(', ')} (comma-separated)`);
  return [...new Set(phases)];
}

/** Whether a phase runs: named by --only, or (without --only) every phase but the on-request ones. */
export function phaseRuns(only: string[] | undefined, phase: string): boolean {
  return only === undefined ? !ON_REQUEST_PHASES.includes(phase) : only.includes(phase);
}
