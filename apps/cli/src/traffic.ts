import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { formatReferenceChanges, isValidTimeZone, loadReferenceFile, openKvReferenceStore, proposeReferences, ReferenceFileInvalid, type SlotCountRow } from '@tollstream/traffic';
import { openWarehouse } from '@tollstream/warehouse';
import { readFile, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';

export interface TrafficReferenceCommandOptions {
  natsUrl: string;
  bucket: string;
  format?: 'csv' | 'json';
  dryRun?: boolean;
  json?: boolean;
}

export class TrafficCommandError extends Error {}

async function withStore<T>(options: TrafficReferenceCommandOptions, body: (store: Awaited<ReturnType<typeof openKvReferenceStore>>) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: options.natsUrl.split(','), name: 'tollstream-cli', timeout: 5_000 });
  try {
    return await body(await openKvReferenceStore(jetstream(nc), { bucket: options.bucket }));
  } finally {
    await nc.close();
  }
}

/** `tollstream traffic load <file>`: validates the whole file (errors name line and field), then applies it, or with --dry-run only shows the changes. */
export async function runTrafficLoad(file: string, options: TrafficReferenceCommandOptions, out: NodeJS.WritableStream): Promise<void> {
  const format = options.format ?? (extname(file).toLowerCase() === '.json' ? 'json' : 'csv');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TrafficCommandError(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    const result = await withStore(options, (store) => loadReferenceFile(store, text, format, { dryRun: options.dryRun === true }));
    if (options.json) out.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      out.write(`${formatReferenceChanges(result.changes)}\n`);
      const changed = result.changes.filter((change) => change.action !== 'unchanged').length;
      out.write(result.applied ? `applied: ${changed} station version(s) changed\n` : `dry run: ${changed} station version(s) would change; nothing written\n`);
    }
  } catch (error) {
    if (error instanceof ReferenceFileInvalid) throw new TrafficCommandError(`${file} rejected, nothing applied:\n${error.message}`);
    throw error;
  }
}

/** `tollstream traffic list`: stations with reference data and their versions. */
export async function runTrafficList(options: TrafficReferenceCommandOptions, out: NodeJS.WritableStream): Promise<void> {
  const records = await withStore(options, (store) => store.list());
  if (options.json) {
    out.write(`${JSON.stringify(records, null, 2)}\n`);
    return;
  }
  for (const record of records) {
    for (const version of record.versions) {
      out.write(`${record.stationId}\t${new Date(version.effectiveFromMs).toISOString()}\t${version.timeZone}\t${version.slotMinutes}m\t${Object.keys(version.bands).length} slots\t${version.version}\n`);
    }
  }
}

export interface TrafficProposeOptions {
  clickhouseUrl?: string;
  dataDir: string;
  database: string;
  out: string;
  weeks: number;
  minRatio: number;
  maxRatio: number;
  until?: Date;
  effectiveFrom?: Date;
  timeZonesFile?: string;
  defaultTimeZone: string;
}

/**
 * `tollstream traffic propose`: reads station × 30-minute slot counts of the last N weeks from the
 * warehouse (tolls.traffic_per_station_slot), proposes min/max per slot of the week (ratios of the
 * median, a missing slot counting 0) and writes a reference file to review, then `traffic load`.
 */
export async function runTrafficPropose(options: TrafficProposeOptions, out: NodeJS.WritableStream): Promise<void> {
  const untilMs = (options.until ?? new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000)).getTime();
  const fromMs = untilMs - options.weeks * 7 * 86_400_000;
  const stations = new Map<string, string>();
  if (options.timeZonesFile) {
    let parsed: { stations?: Record<string, string> };
    try {
      parsed = JSON.parse(await readFile(options.timeZonesFile, 'utf8')) as { stations?: Record<string, string> };
    } catch (error) {
      throw new TrafficCommandError(`cannot read ${options.timeZonesFile}: ${(error as Error).message}`);
    }
    for (const [station, zone] of Object.entries(parsed.stations ?? {})) {
      if (!isValidTimeZone(zone)) throw new TrafficCommandError(`${options.timeZonesFile}: stations.${station}: not an IANA time zone`);
      stations.set(station, zone);
    }
  }
  if (!/^[A-Za-z0-9_]+$/.test(options.database)) throw new TrafficCommandError(`--database: not a database name: ${options.database}`);
  let warehouse: Awaited<ReturnType<typeof openWarehouse>>;
  try {
    warehouse = await openWarehouse({ clickhouseUrl: options.clickhouseUrl, dataDir: options.dataDir });
  } catch (error) {
    throw new TrafficCommandError((error as Error).message);
  }
  let rows: SlotCountRow[];
  try {
    const result = await warehouse.client.query({
      query: `SELECT station_id, toUnixTimestamp(slot_start) AS slot_s, vehicles
              FROM ${options.database}.traffic_per_station_slot
              WHERE slot_start >= toDateTime({from:UInt32}) AND slot_start < toDateTime({until:UInt32})`,
      query_params: { from: Math.floor(fromMs / 1000), until: Math.floor(untilMs / 1000) },
      format: 'JSONEachRow',
    });
    const raw = await result.json<{ station_id: string; slot_s: number | string; vehicles: number | string }>();
    rows = raw.map((row) => ({ stationId: row.station_id, slotStartMs: Number(row.slot_s) * 1000, vehicles: Number(row.vehicles) }));
  } catch (error) {
    throw new TrafficCommandError(`warehouse query failed: ${(error as Error).message}`);
  } finally {
    await warehouse.close().catch(() => undefined);
  }
  const { csv, skipped } = proposeReferences(rows, {
    stations,
    defaultTimeZone: options.defaultTimeZone,
    weeks: options.weeks,
    untilMs,
    minRatio: options.minRatio,
    maxRatio: options.maxRatio,
    effectiveFromMs: (options.effectiveFrom ?? new Date(untilMs)).getTime(),
  });
  await writeFile(options.out, csv);
  for (const reason of skipped) out.write(`skipped ${reason}\n`);
  out.write(`wrote ${options.out}: ${csv.trim().split('\n').length - 1} slot(s) of ${new Set(csv.trim().split('\n').slice(1).map((line) => line.split(',')[0])).size} station(s) from ${rows.length} warehouse row(s), ${new Date(fromMs).toISOString()} .. ${new Date(untilMs).toISOString()}; review, then: tollstream traffic load ${options.out} --dry-run\n`);
}
