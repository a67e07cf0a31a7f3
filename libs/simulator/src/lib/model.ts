import { VehicleClass } from '@tollstream/contracts';
import { localWeekdayMinute, isValidTimeZone } from './local-time';
import { hashText, seededRandom } from './random';

/** Car-equivalent tolls in USD cents before the station tariff factor (same schedule as `tollstream sample`). */
export const baseTollCents: Readonly<Record<VehicleClassName, number>> = {
  car: 275,
  motorcycle: 140,
  bus: 825,
  truck_2_axle: 550,
  truck_3_plus_axle: 1100,
  other: 400,
};

export type VehicleClassName = 'car' | 'motorcycle' | 'bus' | 'truck_2_axle' | 'truck_3_plus_axle' | 'other';

export const vehicleClassCodes: Readonly<Record<VehicleClassName, VehicleClass>> = {
  car: VehicleClass.VEHICLE_CLASS_CAR,
  motorcycle: VehicleClass.VEHICLE_CLASS_MOTORCYCLE,
  bus: VehicleClass.VEHICLE_CLASS_BUS,
  truck_2_axle: VehicleClass.VEHICLE_CLASS_TRUCK_2_AXLE,
  truck_3_plus_axle: VehicleClass.VEHICLE_CLASS_TRUCK_3_PLUS_AXLE,
  other: VehicleClass.VEHICLE_CLASS_OTHER,
};

/** Share of passes per vehicle class. */
export const vehicleClassMix: ReadonlyArray<readonly [VehicleClassName, number]> = [
  ['car', 0.78],
  ['motorcycle', 0.05],
  ['bus', 0.03],
  ['truck_2_axle', 0.07],
  ['truck_3_plus_axle', 0.05],
  ['other', 0.02],
];

export const defaultTimeZones = ['America/New_York', 'America/Chicago', 'America/Denver', 'America/Los_Angeles', 'America/Phoenix'] as const;

export interface Station {
  id: string;
  timeZone: string;
  lanes: number;
  /** Multiplies the base toll: 0.80 … 1.50. */
  tariffFactor: number;
  /** Relative size of the station: its share of the traffic is baseVolume / Σ baseVolume. */
  baseVolume: number;
  /** Toll per vehicle class at this station, integer cents. */
  tollCents: Readonly<Record<VehicleClassName, number>>;
}

export interface Account {
  id: string;
  tagId: string;
  plate: string;
  vehicleClass: VehicleClassName;
  /** Monthly spending threshold in minor units (USD cents). */
  monthlyThresholdMinor: number;
  /** Passes often, with a low threshold: breaches within minutes in a demo. */
  heavyUser: boolean;
}

/** A vehicle without account: identified by its plate only. */
export interface PlateOnlyVehicle {
  plate: string;
  vehicleClass: VehicleClassName;
}

export interface TrafficModelOptions {
  seed: string;
  stations: number;
  accounts: number;
  /** Zones assigned to stations in turn; default: five US zones. Asia/Kathmandu makes a good odd one. */
  timeZones?: readonly string[];
  /** Share of passes by vehicles without account (plate only). Default 0.12. */
  plateOnlyShare?: number;
  /** Share of accounts that are heavy users. Default 0.05. */
  heavyUserShare?: number;
  currency?: string;
}

export interface TrafficModel {
  seed: string;
  seedHash: number;
  currency: string;
  stations: readonly Station[];
  stationIndex: ReadonlyMap<string, number>;
  accounts: readonly Account[];
  /** Indexes into accounts of the heavy users. */
  heavyAccounts: readonly number[];
  plateOnlyVehicles: readonly PlateOnlyVehicle[];
  plateOnlyShare: number;
  /** Share of account passes made by heavy users. */
  heavyPassShare: number;
}

const plateLetters = 'ABCDEFGHJKLMNPRSTUVWXYZ';

export function stationId(index: number): string {
  return `st-${String(index + 1).padStart(3, '0')}`;
}

export function buildTrafficModel(options: TrafficModelOptions): TrafficModel {
  if (!Number.isInteger(options.stations) || options.stations < 1) throw new RangeError('stations must be a positive integer');
  if (!Number.isInteger(options.accounts) || options.accounts < 0) throw new RangeError('accounts must be a non-negative integer');
  const zones = options.timeZones && options.timeZones.length > 0 ? options.timeZones : defaultTimeZones;
  for (const zone of zones) if (!isValidTimeZone(zone)) throw new RangeError(`unknown time zone "${zone}"`);
  const seedHash = hashText(options.seed);
  const random = seededRandom(seedHash);
  const pick = <T>(items: ArrayLike<T>): T => items[Math.floor(random() * items.length)] as T;
  const digits = (length: number) => Array.from({ length }, () => Math.floor(random() * 10)).join('');
  const plate = () => `${Array.from({ length: 3 }, () => pick(plateLetters)).join('')} ${digits(4)}`;
  const chooseClass = (): VehicleClassName => {
    let draw = random();
    for (const [name, share] of vehicleClassMix) {
      if (draw < share) return name;
      draw -= share;
    }
    return 'car';
  };

  const stations: Station[] = Array.from({ length: options.stations }, (_, index) => {
    const tariffFactor = 0.8 + Math.round(random() * 14) / 20;
    const tollCents = Object.fromEntries(
      Object.entries(baseTollCents).map(([name, cents]) => [name, Math.round(cents * tariffFactor)]),
    ) as Record<VehicleClassName, number>;
    return {
      id: stationId(index),
      timeZone: zones[index % zones.length] as string,
      lanes: 2 + Math.floor(random() * 7),
      tariffFactor,
      // Plazas differ in size: 0.5 … 2.0 times an average one.
      baseVolume: Math.round((0.5 + random() * 1.5) * 100) / 100,
      tollCents,
    };
  });

  const heavyUserShare = options.heavyUserShare ?? 0.05;
  const heavyCount = options.accounts === 0 ? 0 : Math.max(1, Math.round(options.accounts * heavyUserShare));
  const accounts: Account[] = Array.from({ length: options.accounts }, (_, index) => {
    const heavyUser = index < heavyCount;
    const vehicleClass = chooseClass();
    return {
      id: `acct-${String(index + 1).padStart(6, '0')}`,
      tagId: `TAG-${digits(10)}`,
      plate: plate(),
      vehicleClass,
      // Heavy users: $20–$60 a month, reached within minutes at demo rates; others $150–$500.
      monthlyThresholdMinor: heavyUser ? 2_000 + Math.floor(random() * 41) * 100 : 15_000 + Math.floor(random() * 71) * 500,
      heavyUser,
    };
  });
  const heavyAccounts = accounts.flatMap((account, index) => (account.heavyUser ? [index] : []));
  const plateOnlyVehicles = Array.from({ length: 2_000 }, () => ({ plate: plate(), vehicleClass: chooseClass() }));

  return {
    seed: options.seed,
    seedHash,
    currency: options.currency ?? 'USD',
    stations,
    stationIndex: new Map(stations.map((station, index) => [station.id, index])),
    accounts,
    heavyAccounts,
    plateOnlyVehicles,
    plateOnlyShare: options.accounts === 0 ? 1 : (options.plateOnlyShare ?? 0.12),
    heavyPassShare: heavyAccounts.length > 0 ? 0.3 : 0,
  };
}

/** Relative traffic by local hour on weekdays: night low, morning rush 7–9, evening rush 16–18. */
const weekdayHourly = [0.2, 0.12, 0.1, 0.1, 0.2, 0.6, 1.4, 2.3, 2.4, 1.6, 1.1, 1.05, 1.1, 1.1, 1.15, 1.4, 2.1, 2.5, 2.2, 1.4, 0.95, 0.7, 0.5, 0.32];
/** Weekends: no commuter peaks, a broad midday and afternoon hump. */
const weekendHourly = [0.3, 0.2, 0.15, 0.12, 0.12, 0.2, 0.35, 0.55, 0.85, 1.15, 1.35, 1.45, 1.5, 1.5, 1.45, 1.4, 1.35, 1.25, 1.1, 0.9, 0.75, 0.6, 0.45, 0.35];

/** Traffic factor at a local weekday (0 = Monday) and minute of the day, interpolated between hours. */
export function localProfile(weekday: number, minute: number): number {
  const table = weekday >= 5 ? weekendHourly : weekdayHourly;
  const hour = Math.floor(minute / 60);
  const nextDayTable = (weekday + 1) % 7 >= 5 ? weekendHourly : weekdayHourly;
  const next = hour === 23 ? nextDayTable[0] : table[hour + 1];
  const fraction = (minute % 60) / 60;
  return (table[hour] as number) * (1 - fraction) + (next as number) * fraction;
}

/** Mean of localProfile over a week: realistic traffic is normalised so that the weekly average rate is the requested one. */
export const meanWeeklyProfile = (() => {
  let sum = 0;
  for (let weekday = 0; weekday < 7; weekday++) for (let minute = 0; minute < 1440; minute++) sum += localProfile(weekday, minute);
  return sum / (7 * 1440);
})();

export type TrafficPattern = 'realistic' | 'flat';

export interface RateOptions {
  /** Average records per second over all stations (over a week for the realistic pattern). */
  recordsPerSecond: number;
  pattern: TrafficPattern;
}

/** Vehicles per second expected at a station at instant t (no faults). */
export function stationRatePerSecond(model: TrafficModel, stationIndex: number, t: number, rate: RateOptions): number {
  const station = model.stations[stationIndex] as Station;
  const share = station.baseVolume / totalBaseVolume(model);
  if (rate.pattern === 'flat') return rate.recordsPerSecond * share;
  const { weekday, minute } = localWeekdayMinute(station.timeZone, t);
  return (rate.recordsPerSecond * share * localProfile(weekday, minute)) / meanWeeklyProfile;
}

const totals = new WeakMap<TrafficModel, number>();
function totalBaseVolume(model: TrafficModel): number {
  let total = totals.get(model);
  if (total === undefined) {
    total = model.stations.reduce((sum, station) => sum + station.baseVolume, 0);
    totals.set(model, total);
  }
  return total;
}

/** Vehicles expected at a station during [slotStart, slotStart + slotMinutes) without faults: the basis of traffic reference bands. */
export function expectedVehicles(model: TrafficModel, rate: RateOptions, stationId: string, slotStart: number | Date, slotMinutes: number): number {
  const index = model.stationIndex.get(stationId);
  if (index === undefined) throw new RangeError(`unknown station ${stationId}`);
  const start = typeof slotStart === 'number' ? slotStart : slotStart.getTime();
  let sum = 0;
  // Generation draws per second with the rate of that second; sampling each minute at its middle is within a fraction of a vehicle.
  for (let minute = 0; minute < slotMinutes; minute++) sum += stationRatePerSecond(model, index, start + minute * 60_000 + 30_000, rate) * 60;
  return sum;
}

/** Expected vehicles in a slot of the week in the station's local time (what a reference band describes). */
export function expectedVehiclesInLocalSlot(model: TrafficModel, rate: RateOptions, stationIndex: number, weekday: number, startMinute: number, slotMinutes: number): number {
  const station = model.stations[stationIndex] as Station;
  const perSecond = (rate.recordsPerSecond * station.baseVolume) / totalBaseVolume(model);
  if (rate.pattern === 'flat') return perSecond * slotMinutes * 60;
  let sum = 0;
  for (let minute = startMinute; minute < startMinute + slotMinutes; minute++) sum += localProfile(weekday, minute);
  return (perSecond * sum * 60) / meanWeeklyProfile;
}
