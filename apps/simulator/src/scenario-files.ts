import { accountsCsv, buildTrafficModel, derivedStationToken, referenceBandRows, referenceBandsCsv, stationCredentialsJson, stationTimeZonesJson, type TrafficPattern } from '@tollstream/simulator';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelSettings } from './run';

export interface ScenarioSettings extends ModelSettings {
  outDir: string;
  /** Token from --token-file; otherwise derived from the seed (local and demo runs only). */
  token?: string;
  rate: number;
  pattern: TrafficPattern;
  effectiveFrom: string;
  slotMinutes: number;
}

/** The files a local run needs, by name. Same settings ⇒ same bytes. */
export const scenarioFileNames = {
  credentials: 'ingest-stations.json',
  timeZones: 'station-time-zones.json',
  references: 'traffic-references.csv',
  accounts: 'accounts.csv',
  token: 'station-token',
} as const;

export async function writeScenario(settings: ScenarioSettings): Promise<string[]> {
  const model = buildTrafficModel(settings);
  const token = settings.token ?? derivedStationToken(settings.seed);
  await mkdir(settings.outDir, { recursive: true });
  const files: Array<[string, string]> = [
    [scenarioFileNames.credentials, stationCredentialsJson(model, token)],
    [scenarioFileNames.timeZones, stationTimeZonesJson(model)],
    [scenarioFileNames.references, referenceBandsCsv(referenceBandRows(model, { recordsPerSecond: settings.rate, pattern: settings.pattern, effectiveFrom: settings.effectiveFrom, slotMinutes: settings.slotMinutes }))],
    [scenarioFileNames.accounts, accountsCsv(model)],
  ];
  const written: string[] = [];
  for (const [name, text] of files) {
    await writeFile(join(settings.outDir, name), text, { mode: name === scenarioFileNames.credentials ? 0o600 : 0o644 });
    written.push(name);
  }
  if (settings.token === undefined) {
    await writeFile(join(settings.outDir, scenarioFileNames.token), `${token}\n`, { mode: 0o600 });
    written.push(scenarioFileNames.token);
  }
  return written;
}
