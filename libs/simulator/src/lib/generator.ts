import type { TollTransaction } from '@tollstream/contracts';
import type { FaultOptions } from './faults';
import { stationRatePerSecond, vehicleClassCodes, type RateOptions, type Station, type TrafficModel } from './model';
import { mixSeed, seededRandom } from './random';

/** One submission of a station. */
export interface StationBatch {
  stationId: string;
  transactions: TollTransaction[];
  /** transaction id → the field the ingestor names when rejecting it (malformed records only). */
  expectedRejections: ReadonlyMap<string, string>;
  /** Records to submit again once this batch is answered (the duplicates fault); the ingestor should answer DUPLICATE. */
  resend: TollTransaction[];
}

export interface GeneratorOptions extends RateOptions {
  /** Records per submission at most. Default 500. */
  batchSize?: number;
  faults?: FaultOptions;
  /** Stop generating after this many records (valid and malformed, duplicates not counted). */
  maxRecords?: number;
}

/** Exactly what was generated, for tests and the live view. */
export interface GenerationReport {
  /** Distinct valid records handed out for sending (late ones once released). */
  validRecords: number;
  malformedRecords: number;
  /** Malformed records by the field the ingestor should name. */
  malformedByField: Record<string, number>;
  /** Records submitted a second time (duplicates fault). */
  duplicateRecords: number;
  /** Late records released so far. */
  lateRecords: number;
  /** Late records still held back. */
  lateHeld: number;
  /** Records sent after a record of the same station with a later event time (out-of-order fault). */
  outOfOrderRecords: number;
  /** Records silent stations did not send. */
  silencedRecords: number;
  batches: number;
  /** Valid records handed out per station. */
  perStation: Record<string, number>;
}

interface MalformedKind {
  field: string;
  apply(transaction: TollTransaction): void;
}

/** Records the ingestor rejects, each naming a field (libs/ingest validation). */
export const malformedKinds: readonly MalformedKind[] = [
  { field: 'amount_minor', apply: (t) => void (t.amountMinor = -t.amountMinor - 1) },
  { field: 'currency', apply: (t) => void (t.currency = 'ZZZ') },
  { field: 'station_id', apply: (t) => void (t.stationId = '') },
  { field: 'tag_id', apply: (t) => void ((t.tagId = ''), (t.plate = '')) },
  { field: 'plate', apply: (t) => void (t.plate = 'bad plate!') },
];

interface HeldRecord {
  releaseAtMs: number;
  transaction: TollTransaction;
}

const faultStream = 0xfa017;

/**
 * Generates the records of every station for event-time intervals. Each (station, second) draws from its
 * own seeded stream, so records do not depend on how the time is cut into intervals: same seed and rate ⇒
 * same records. Faults keep state (held-back late records), hence a class.
 */
export class TrafficGenerator {
  private readonly batchSize: number;
  private readonly faults: FaultOptions;
  private readonly held: HeldRecord[][];
  private readonly laneIds: string[][];
  private produced = 0;
  private readonly counts: GenerationReport;

  constructor(
    private readonly model: TrafficModel,
    private readonly options: GeneratorOptions,
  ) {
    if (!(options.recordsPerSecond >= 0) || !Number.isFinite(options.recordsPerSecond)) throw new RangeError('recordsPerSecond must be a non-negative number');
    this.batchSize = options.batchSize ?? 500;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new RangeError('batchSize must be a positive integer');
    this.faults = options.faults ?? {};
    this.held = model.stations.map(() => []);
    this.laneIds = model.stations.map((station) => Array.from({ length: station.lanes }, (_, lane) => `lane-${lane + 1}`));
    this.counts = {
      validRecords: 0,
      malformedRecords: 0,
      malformedByField: {},
      duplicateRecords: 0,
      lateRecords: 0,
      lateHeld: 0,
      outOfOrderRecords: 0,
      silencedRecords: 0,
      batches: 0,
      perStation: Object.fromEntries(model.stations.map((station) => [station.id, 0])),
    };
  }

  /** True once maxRecords records were generated. */
  get exhausted(): boolean {
    return this.options.maxRecords !== undefined && this.produced >= this.options.maxRecords;
  }

  report(): GenerationReport {
    return { ...this.counts, malformedByField: { ...this.counts.malformedByField }, perStation: { ...this.counts.perStation } };
  }

  /** Batches for the whole seconds starting in [fromMs, toMs), plus late records due by toMs. */
  generate(fromMs: number, toMs: number): StationBatch[] {
    const batches: StationBatch[] = [];
    const firstSecond = Math.ceil(fromMs / 1000);
    const endSecond = Math.ceil(toMs / 1000);
    for (let stationIndex = 0; stationIndex < this.model.stations.length; stationIndex++) {
      const records: TollTransaction[] = [];
      const expectedRejections = new Map<string, string>();
      for (let second = firstSecond; second < endSecond && !this.exhausted; second++) this.generateSecond(stationIndex, second, records, expectedRejections);
      this.shuffle(stationIndex, firstSecond, records);
      const held = this.held[stationIndex] as HeldRecord[];
      let released = 0;
      while (released < held.length && (held[released] as HeldRecord).releaseAtMs <= toMs) records.push((held[released++] as HeldRecord).transaction);
      if (released > 0) {
        held.splice(0, released);
        this.counts.lateRecords += released;
        this.counts.lateHeld -= released;
      }
      this.toBatches(stationIndex, records, expectedRejections, batches);
    }
    return batches;
  }

  /** Releases every record still held back (at the end of a run). */
  flush(): StationBatch[] {
    const batches: StationBatch[] = [];
    this.held.forEach((held, stationIndex) => {
      const records = held.map((entry) => entry.transaction);
      this.counts.lateRecords += records.length;
      this.counts.lateHeld -= records.length;
      held.length = 0;
      this.toBatches(stationIndex, records, new Map(), batches);
    });
    return batches;
  }

  private rateFactor(station: Station, t: number): number {
    let factor = 1;
    for (const silent of this.faults.silent ?? []) if (silent.stationId === station.id && t >= silent.fromMs) return 0;
    for (const drop of this.faults.drop ?? []) if (drop.stationId === station.id && t >= drop.fromMs) factor *= drop.factor;
    for (const burst of this.faults.burst ?? []) if (t >= burst.fromMs && t < burst.toMs) factor *= burst.factor;
    return factor;
  }

  private generateSecond(stationIndex: number, second: number, out: TollTransaction[], expectedRejections: Map<string, string>): void {
    const model = this.model;
    const station = model.stations[stationIndex] as Station;
    const tickStart = second * 1000;
    const random = seededRandom(mixSeed(model.seedHash, stationIndex, second));
    const perSecond = stationRatePerSecond(model, stationIndex, tickStart, this.options);
    // Floor plus one more with the probability of the fraction: the average is exact and counts stay cheap.
    const draw = random();
    const factor = this.rateFactor(station, tickStart);
    const normalCount = Math.floor(perSecond) + (draw < perSecond - Math.floor(perSecond) ? 1 : 0);
    if (factor === 0) {
      this.counts.silencedRecords += normalCount;
      return;
    }
    const scaled = perSecond * factor;
    let count = factor === 1 ? normalCount : Math.floor(scaled) + (draw < scaled - Math.floor(scaled) ? 1 : 0);
    if (this.options.maxRecords !== undefined) count = Math.min(count, this.options.maxRecords - this.produced);
    if (count <= 0) return;
    this.produced += count;

    const faults = this.faults;
    const perRecordFaults = (faults.malformed ?? 0) > 0 || (faults.late?.fraction ?? 0) > 0;
    const faultRandom = perRecordFaults ? seededRandom(mixSeed(model.seedHash, stationIndex, second, faultStream)) : undefined;
    const lanes = this.laneIds[stationIndex] as string[];
    const accounts = model.accounts;
    const heavy = model.heavyAccounts;
    const plateOnly = model.plateOnlyVehicles;
    const idPrefix = `${station.id}:${second}:`;
    const spacing = 1000 / count;
    for (let n = 0; n < count; n++) {
      const transaction: TollTransaction = {
        transactionId: idPrefix + n,
        stationId: station.id,
        laneId: lanes[Math.floor(random() * lanes.length)] as string,
        tagId: '',
        plate: '',
        accountId: '',
        vehicleClass: 0,
        amountMinor: 0,
        currency: model.currency,
        occurredAt: new Date(tickStart + Math.floor((n + random()) * spacing)),
      };
      if (random() < model.plateOnlyShare) {
        const vehicle = plateOnly[Math.floor(random() * plateOnly.length)] as (typeof plateOnly)[number];
        transaction.plate = vehicle.plate;
        transaction.vehicleClass = vehicleClassCodes[vehicle.vehicleClass];
        transaction.amountMinor = station.tollCents[vehicle.vehicleClass];
      } else {
        const index = random() < model.heavyPassShare ? (heavy[Math.floor(random() * heavy.length)] as number) : Math.floor(random() * accounts.length);
        const account = accounts[index] as (typeof accounts)[number];
        transaction.tagId = account.tagId;
        transaction.plate = account.plate;
        transaction.accountId = account.id;
        transaction.vehicleClass = vehicleClassCodes[account.vehicleClass];
        transaction.amountMinor = station.tollCents[account.vehicleClass];
      }
      if (faultRandom) {
        if (faultRandom() < (faults.malformed ?? 0)) {
          const kind = malformedKinds[Math.floor(faultRandom() * malformedKinds.length)] as MalformedKind;
          kind.apply(transaction);
          expectedRejections.set(transaction.transactionId, kind.field);
          this.counts.malformedRecords++;
          this.counts.malformedByField[kind.field] = (this.counts.malformedByField[kind.field] ?? 0) + 1;
          out.push(transaction);
          continue;
        }
        if (faults.late && faultRandom() < faults.late.fraction) {
          (this.held[stationIndex] as HeldRecord[]).push({ releaseAtMs: (transaction.occurredAt as Date).getTime() + faults.late.delayMs, transaction });
          this.counts.lateHeld++;
          continue;
        }
      }
      out.push(transaction);
    }
  }

  /** Out-of-order fault: sort by event time plus a random delay below the bound, so no record moves further than it. */
  private shuffle(stationIndex: number, firstSecond: number, records: TollTransaction[]): void {
    const bound = this.faults.outOfOrderMs ?? 0;
    if (bound <= 0 || records.length < 2) return;
    const random = seededRandom(mixSeed(this.model.seedHash, stationIndex, firstSecond, faultStream + 1));
    const keyed = records.map((transaction) => ({ transaction, key: (transaction.occurredAt as Date).getTime() + random() * bound }));
    keyed.sort((a, b) => a.key - b.key);
    let latest = -Infinity;
    keyed.forEach((entry, index) => {
      records[index] = entry.transaction;
      const t = (entry.transaction.occurredAt as Date).getTime();
      if (t < latest) this.counts.outOfOrderRecords++;
      else latest = t;
    });
  }

  private toBatches(stationIndex: number, records: TollTransaction[], expectedRejections: ReadonlyMap<string, string>, out: StationBatch[]): void {
    const station = this.model.stations[stationIndex] as Station;
    for (let start = 0; start < records.length; start += this.batchSize) {
      const transactions = records.length <= this.batchSize ? records : records.slice(start, start + this.batchSize);
      const rejections = new Map<string, string>();
      let valid = transactions.length;
      if (expectedRejections.size > 0) {
        for (const transaction of transactions) {
          const field = expectedRejections.get(transaction.transactionId);
          if (field === undefined) continue;
          valid--;
          rejections.set(transaction.transactionId, field);
        }
      }
      let resend: TollTransaction[] = [];
      const duplicates = this.faults.duplicates ?? 0;
      if (duplicates > 0) {
        const first = transactions[0] as TollTransaction;
        const random = seededRandom(mixSeed(this.model.seedHash, stationIndex, (first.occurredAt as Date).getTime() / 1000, start, faultStream + 2));
        if (random() < duplicates) resend = transactions.filter((transaction) => !rejections.has(transaction.transactionId));
      }
      this.counts.validRecords += valid;
      this.counts.perStation[station.id] = (this.counts.perStation[station.id] ?? 0) + valid;
      this.counts.duplicateRecords += resend.length;
      this.counts.batches++;
      out.push({ stationId: station.id, transactions, expectedRejections: rejections, resend });
    }
  }
}
