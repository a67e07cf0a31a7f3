// Toll traffic simulator: a seeded traffic model, a record generator with injectable faults, and the
// scenario files (credentials, time zones, reference bands, accounts) a local run needs. Pure: no I/O.
export {
  baseTollCents,
  buildTrafficModel,
  defaultTimeZones,
  expectedVehicles,
  expectedVehiclesInLocalSlot,
  localProfile,
  stationId,
  stationRatePerSecond,
  vehicleClassCodes,
  vehicleClassMix,
} from './lib/model';
export type { Account, PlateOnlyVehicle, RateOptions, Station, TrafficModel, TrafficModelOptions, TrafficPattern, VehicleClassName } from './lib/model';
export { malformedKinds, TrafficGenerator } from './lib/generator';
export type { GenerationReport, GeneratorOptions, StationBatch } from './lib/generator';
export { faultSyntax, FaultSyntaxError, parseDuration, parseFaults } from './lib/faults';
export type { FaultOptions } from './lib/faults';
export { localWeekdayMinute, utcOffsetMinutes } from './lib/local-time';
export { hashText, seededRandom } from './lib/random';
export {
  accountsCsv,
  bandFor,
  derivedStationToken,
  referenceBandRows,
  referenceBandsCsv,
  stationCredentialsJson,
  stationTimeZonesJson,
} from './lib/scenario';
export type { ReferenceBandOptions, ReferenceBandRow } from './lib/scenario';
