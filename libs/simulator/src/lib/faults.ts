/** Faults the simulator injects on request. Times are event times in ms since the epoch. */
export interface FaultOptions {
  /** Fraction of batches submitted a second time after their answer (stations retrying). */
  duplicates?: number;
  /** Records of a station are shuffled, each moving by at most this many ms of event time. */
  outOfOrderMs?: number;
  /** A fraction of records held back `delayMs` of event time, then sent. */
  late?: { delayMs: number; fraction: number };
  /** Fraction of records replaced by records the ingestor rejects. */
  malformed?: number;
  /** Stations that send nothing from `fromMs` on. */
  silent?: ReadonlyArray<{ stationId: string; fromMs: number }>;
  /** Stations whose traffic falls to `factor` × normal from `fromMs` on. */
  drop?: ReadonlyArray<{ stationId: string; factor: number; fromMs: number }>;
  /** Every station sends `factor` × its normal rate during [fromMs, toMs). */
  burst?: ReadonlyArray<{ fromMs: number; toMs: number; factor: number }>;
}

export class FaultSyntaxError extends Error {}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "2s", "5m", "1h", "3d" → ms. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) throw new FaultSyntaxError(`"${text}" is not a duration (e.g. 500ms, 2s, 5m, 1h, 3d)`);
  return Math.round(Number(match[1]) * (durationUnits[match[2] as string] as number));
}

function parseFraction(text: string, what: string): number {
  const value = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) throw new FaultSyntaxError(`${what}: "${text}" is not a fraction between 0 and 1`);
  return value;
}

function splitAt(text: string, startMs: number): { body: string; fromMs: number } {
  const at = text.indexOf('@');
  if (at < 0) return { body: text, fromMs: startMs };
  return { body: text.slice(0, at), fromMs: startMs + parseDuration(text.slice(at + 1)) };
}

/** The fault syntax, for help texts and docs. */
export const faultSyntax =
  'duplicates=F, out-of-order=DUR, late=DUR:F, malformed=F, silent=STATION[@DUR], drop=STATION:F[@DUR], burst=DUR:Kx[@DUR] ' +
  '(F a fraction 0..1, DUR like 500ms/2s/5m/1h, @DUR = that long after the start of generation)';

/**
 * Parses e.g. "duplicates=0.01,out-of-order=2s,late=5m:0.001,malformed=0.001,silent=st-007,drop=st-003:0.2,burst=60s:5x@10s".
 * `startMs` is the event time generation starts at; "@DUR" offsets count from there.
 */
export function parseFaults(text: string, startMs: number, knownStations?: ReadonlySet<string>): FaultOptions {
  const faults: FaultOptions & { silent: Array<{ stationId: string; fromMs: number }>; drop: Array<{ stationId: string; factor: number; fromMs: number }>; burst: Array<{ fromMs: number; toMs: number; factor: number }> } = {
    silent: [],
    drop: [],
    burst: [],
  };
  const checkStation = (id: string, what: string) => {
    if (id.length === 0) throw new FaultSyntaxError(`${what}: a station id is required`);
    if (knownStations && !knownStations.has(id)) throw new FaultSyntaxError(`${what}: unknown station "${id}"`);
  };
  for (const item of text.split(',').map((part) => part.trim()).filter((part) => part.length > 0)) {
    const equals = item.indexOf('=');
    if (equals < 0) throw new FaultSyntaxError(`"${item}": expected NAME=VALUE; faults: ${faultSyntax}`);
    const name = item.slice(0, equals).trim();
    const value = item.slice(equals + 1).trim();
    try {
      switch (name) {
        case 'duplicates':
          faults.duplicates = parseFraction(value, name);
          break;
        case 'out-of-order':
          faults.outOfOrderMs = parseDuration(value);
          break;
        case 'late': {
          const [delay, fraction, ...rest] = value.split(':');
          if (fraction === undefined || rest.length > 0) throw new FaultSyntaxError('expected DUR:F, e.g. late=5m:0.001');
          faults.late = { delayMs: parseDuration(delay as string), fraction: parseFraction(fraction, name) };
          break;
        }
        case 'malformed':
          faults.malformed = parseFraction(value, name);
          break;
        case 'silent': {
          const { body, fromMs } = splitAt(value, startMs);
          checkStation(body, name);
          faults.silent.push({ stationId: body, fromMs });
          break;
        }
        case 'drop': {
          const { body, fromMs } = splitAt(value, startMs);
          const [station, factor, ...rest] = body.split(':');
          if (factor === undefined || rest.length > 0) throw new FaultSyntaxError('expected STATION:F[@DUR], e.g. drop=st-003:0.2');
          checkStation(station as string, name);
          faults.drop.push({ stationId: station as string, factor: parseFraction(factor, name), fromMs });
          break;
        }
        case 'burst': {
          const { body, fromMs } = splitAt(value, startMs);
          const [duration, factor, ...rest] = body.split(':');
          const match = /^(\d+(?:\.\d+)?)x$/.exec(factor?.trim() ?? '');
          if (!match || rest.length > 0) throw new FaultSyntaxError('expected DUR:Kx[@DUR], e.g. burst=60s:5x@10s');
          faults.burst.push({ fromMs, toMs: fromMs + parseDuration(duration as string), factor: Number(match[1]) });
          break;
        }
        default:
          throw new FaultSyntaxError(`unknown fault; faults: ${faultSyntax}`);
      }
    } catch (error) {
      if (error instanceof FaultSyntaxError) throw new FaultSyntaxError(`fault "${item}": ${error.message}`);
      throw error;
    }
  }
  return faults;
}
