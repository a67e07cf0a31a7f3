/** The bench's phases and --only. */
export const PHASES = ['ingest', 'windower', 'warehouse', 'billing', 'traffic', 'notifier', 'pipeline'];

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
  const unknown = phases.filter((phase) => !PHASES.includes(phase));
  if (unknown.length > 0) throw new Error(`--only: unknown phase ${unknown.map((phase) => JSON.stringify(phase)).join(', ')}; expected phases among ${PHASES.join(', ')} (comma-separated)`);
  return [...new Set(phases)];
}
