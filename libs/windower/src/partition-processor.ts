import {
  CustomerSpendBatch,
  type CustomerSpendWindow,
  IngestedTransaction,
  StationTrafficBatch,
  type StationTrafficWindow,
  Subjects,
  TransactionBatch,
  type VehicleClassCount,
  type WindowedAggregate,
} from '@tollstream/contracts';
import { shardForAccount } from '@tollstream/messaging';
import { WindowEngine, type WindowEngineOptions, type WindowResult, type WindowSpec } from '@tollstream/windowing';
import { readTransactionBatch } from './transaction-reader';

/** How one aggregate is windowed. */
export interface AggregateWindowing {
  window: WindowSpec;
  outOfOrdernessMs: number;
  allowedLatenessMs: number;
}

export interface PartitionProcessorOptions {
  partition: number;
  customerSpend: AggregateWindowing;
  stationTraffic: AggregateWindowing;
  /** A partition without records for this long (in log time) lets its watermark follow log time. */
  idleTimeoutMs: number;
  /** IANA zone of a station, for station traffic windows aligned to its local day. */
  stationTimeZone: (stationId: string) => string;
  /** Spend results go to tolls.agg.spend.<shard>, shard = hash(account) mod this. */
  spendShards: number;
  /** Window results per output message (each message must stay under the broker's size limit). */
  maxResultsPerMessage: number;
  /** A traffic batch without windows still goes out when the watermark moved this much, so readers see slots end. */
  watermarkPublishIntervalMs: number;
}

/** A message to publish: deterministic id, so that reprocessing the same input is absorbed. */
export interface OutgoingMessage {
  subject: string;
  msgId: string;
  payload: Uint8Array;
  /** Window results in the message (0 for late records and watermark-only batches). */
  results: number;
}

export interface ProcessedInput {
  messages: OutgoingMessage[];
  records: number;
  lateForSpend: number;
  lateForTraffic: number;
  /** Records without a customer account (plate-only passes): no spend window, still counted as traffic. */
  withoutAccount: number;
  /** Set when the input message is not a TransactionBatch: the caller dead-letters it. */
  undecodable?: string;
}

/** Number of vehicle classes: sub-keys of the traffic windows are VehicleClass values. */
const VEHICLE_CLASSES = 7;
const SNAPSHOT_FORMAT = 1;

/**
 * The windower's work for one partition of the transaction stream, without I/O: input messages in,
 * messages to publish out. Deterministic: the same input sequence from the same state gives the
 * same output messages byte for byte (ids included). That is what makes recovery exact: restore a
 * snapshot taken at input sequence S, process the stream again from S + 1, and every output that
 * was published before the crash is published again identically and absorbed by JetStream dedup
 * (and by readers that keep the latest revision per result id). See docs/adr/0006.
 *
 * Spend is keyed by currency + account (the first 3 characters of the key are the ISO code), so
 * results never mix currencies; traffic is keyed by station with vehicle classes as sub-keys.
 */
export class PartitionProcessor {
  private lastSequenceProcessed = 0;
  private lastPublishedWatermarkMs = Number.MIN_SAFE_INTEGER;
  /**
   * Position (input sequence, chunk) of the last spend batch sent to each shard: the next batch to
   * the shard names it as its predecessor, so billing recognises gaps and repeats (ADR 0013).
   */
  private readonly lastSpendPosition = new Map<number, [inputSequence: number, chunk: number]>();
  /** Restored from a snapshot taken before positions were kept: a shard's first predecessor is unknown. */
  private spendChainUnknown = false;

  private constructor(
    private readonly options: PartitionProcessorOptions,
    private readonly spend: WindowEngine,
    private readonly traffic: WindowEngine,
  ) {}

  static create(options: PartitionProcessorOptions): PartitionProcessor {
    validateOptions(options);
    return new PartitionProcessor(
      options,
      new WindowEngine(spendEngineOptions(options)),
      new WindowEngine(trafficEngineOptions(options)),
    );
  }

  /** Input sequence (TOLL_TX stream sequence) of the last message processed; 0 if none. */
  get lastSequence(): number {
    return this.lastSequenceProcessed;
  }

  get watermarkMs(): number {
    return Math.min(this.spend.watermarkMs, this.traffic.watermarkMs);
  }

  get openWindows(): { customerSpend: number; stationTraffic: number } {
    return { customerSpend: this.spend.openWindowCount, stationTraffic: this.traffic.openWindowCount };
  }

  /**
   * Processes the input message at `sequence`, appended to the stream at `logTimeMs` (the broker's
   * timestamp: stored with the message, so a replay sees the same value).
   */
  process(sequence: number, logTimeMs: number, data: Uint8Array): ProcessedInput {
    if (sequence <= this.lastSequenceProcessed) {
      throw new Error(`input sequence ${sequence} of partition ${this.options.partition} was already processed (last ${this.lastSequenceProcessed})`);
    }
    this.lastSequenceProcessed = sequence;
    const outcome: ProcessedInput = { messages: [], records: 0, lateForSpend: 0, lateForTraffic: 0, withoutAccount: 0 };
    const lateSpend: IngestedTransaction[] = [];
    const lateTraffic: IngestedTransaction[] = [];
    try {
      readTransactionBatch(data, (record) => {
        // The ingestor validated every record (ADR 0003); a record without event time cannot be windowed.
        if (Number.isNaN(record.occurredAtMs)) return;
        outcome.records++;
        const eventTimeMs = record.occurredAtMs;
        if (record.accountId === '') {
          outcome.withoutAccount++;
        } else if (this.spend.add({ key: record.currency + record.accountId, eventTimeMs, value: record.amountMinor }) === 'late') {
          lateSpend.push(IngestedTransaction.decode(record.encoded()));
        }
        const vehicleClass = record.vehicleClass >= 0 && record.vehicleClass < VEHICLE_CLASSES ? record.vehicleClass : 0;
        if (this.traffic.add({ key: record.stationId, eventTimeMs, value: 1, subKey: vehicleClass }) === 'late') {
          lateTraffic.push(IngestedTransaction.decode(record.encoded()));
        }
      });
    } catch (error) {
      // Records before the damage stay applied: the same bytes always give the same result, so a
      // replay repeats exactly this, and the message goes to the dead letters whole.
      const applied = outcome.records > 0 ? ` (after ${outcome.records} records)` : '';
      outcome.undecodable = `not a TransactionBatch${applied}: ${error instanceof Error ? error.message : String(error)}`;
    }
    const carriedRecords = outcome.records > 0;
    this.spend.advanceLogTime(logTimeMs, carriedRecords);
    this.traffic.advanceLogTime(logTimeMs, carriedRecords);
    outcome.lateForSpend = lateSpend.length;
    outcome.lateForTraffic = lateTraffic.length;
    this.emit(sequence, outcome, lateSpend, lateTraffic);
    return outcome;
  }

  private emit(sequence: number, outcome: ProcessedInput, lateSpend: IngestedTransaction[], lateTraffic: IngestedTransaction[]): void {
    const { partition } = this.options;
    this.emitLate('spend', sequence, lateSpend, outcome);
    this.emitLate('traffic', sequence, lateTraffic, outcome);
    this.emitSpend(sequence, this.spend.takeResults(), lateSpend, outcome);
    const trafficResults = this.traffic.takeResults();
    const watermarkMs = this.traffic.watermarkMs;
    const watermarkMoved = watermarkMs - this.lastPublishedWatermarkMs >= this.options.watermarkPublishIntervalMs;
    if (trafficResults.length > 0 || (watermarkMoved && watermarkMs > Number.MIN_SAFE_INTEGER)) {
      this.lastPublishedWatermarkMs = watermarkMs;
      const watermark = new Date(watermarkMs);
      const windows = trafficResults.map((result) => this.stationTrafficWindow(result));
      // A watermark-only batch (no windows) is one message too.
      forEachChunk(windows, this.options.maxResultsPerMessage, true, (chunk, index) => {
        const batchId = `traffic-${partition}-${sequence}-${index}`;
        outcome.messages.push({
          subject: Subjects.stationTrafficPartition(partition),
          msgId: batchId,
          payload: StationTrafficBatch.encode({ batchId, sourcePartition: partition, inputSequence: sequence, watermark, windows: chunk }).finish(),
          results: chunk.length,
        });
      });
    }
  }

  private emitSpend(sequence: number, results: WindowResult[], lateSpend: IngestedTransaction[], outcome: ProcessedInput): void {
    if (results.length === 0 && lateSpend.length === 0) return;
    const { partition, spendShards } = this.options;
    const windowsByShard = new Map<number, CustomerSpendWindow[]>();
    const lateByShard = new Map<number, IngestedTransaction[]>();
    const add = <T>(byShard: Map<number, T[]>, shard: number, item: T) => {
      let list = byShard.get(shard);
      if (!list) byShard.set(shard, (list = []));
      list.push(item);
    };
    for (const result of results) {
      const window = this.customerSpendWindow(result);
      add(windowsByShard, shardForAccount(window.accountId, spendShards), window);
    }
    for (const late of lateSpend) {
      const accountId = late.transaction?.accountId;
      if (accountId) add(lateByShard, shardForAccount(accountId, spendShards), late);
    }
    const watermarkMs = this.spend.watermarkMs;
    const watermark = new Date(watermarkMs);
    // Windows ending at or before this get no further revision (a record is late for a window once its end + lateness <= watermark).
    const finalBefore = watermarkMs > Number.MIN_SAFE_INTEGER ? new Date(watermarkMs - this.options.customerSpend.allowedLatenessMs) : undefined;
    // Shards in ascending order: the output must not depend on anything but the input.
    const shards = [...new Set([...windowsByShard.keys(), ...lateByShard.keys()])].sort((a, b) => a - b);
    for (const shard of shards) {
      const windows = windowsByShard.get(shard) ?? [];
      const late = lateByShard.get(shard) ?? [];
      const send = (chunk: number, chunkWindows: CustomerSpendWindow[], lateTransactions: IngestedTransaction[]) => {
        const previous = this.lastSpendPosition.get(shard) ?? (this.spendChainUnknown ? undefined : ([0, 0] as [number, number]));
        this.lastSpendPosition.set(shard, [sequence, chunk]);
        const batchId = `spend-${partition}-${sequence}-${shard}-${chunk}`;
        outcome.messages.push({
          subject: Subjects.customerSpendShard(shard),
          msgId: batchId,
          payload: CustomerSpendBatch.encode({
            batchId,
            sourcePartition: partition,
            inputSequence: sequence,
            chunk,
            previousInputSequence: previous?.[0],
            previousChunk: previous?.[1],
            finalBefore,
            watermark,
            windows: chunkWindows,
            lateTransactions,
          }).finish(),
          results: chunkWindows.length,
        });
      };
      let chunks = 0;
      forEachChunk(windows, this.options.maxResultsPerMessage, false, (chunk, index) => {
        send(index, chunk, []);
        chunks = index + 1;
      });
      // Late records are at most the input message's records, so they fit one message as the input did.
      if (late.length > 0) send(chunks, [], late);
    }
  }

  private emitLate(aggregate: WindowedAggregate, sequence: number, late: IngestedTransaction[], outcome: ProcessedInput): void {
    if (late.length === 0) return;
    const { partition } = this.options;
    // Late records are at most the input message's records, so they fit one message as the input did.
    const batchId = `late-${aggregate}-${partition}-${sequence}`;
    outcome.messages.push({
      subject: Subjects.lateTransactions(aggregate, partition),
      msgId: batchId,
      payload: TransactionBatch.encode({ batchId, transactions: late }).finish(),
      results: 0,
    });
  }

  /** Results closing together mostly share their window: one Date per bound, not one per result. */
  private readonly boundDates = new Map<number, Date>();
  private dateOf(ms: number): Date {
    let date = this.boundDates.get(ms);
    if (!date) {
      if (this.boundDates.size > 10_000) this.boundDates.clear();
      this.boundDates.set(ms, (date = new Date(ms)));
    }
    return date;
  }

  private customerSpendWindow(result: WindowResult): CustomerSpendWindow {
    const currency = result.key.slice(0, 3);
    const accountId = result.key.slice(3);
    const { partition } = this.options;
    return {
      resultId: `spend/${accountId}/${currency}/p${partition}/${result.startMs}-${result.endMs}/r${result.revision}`,
      accountId,
      currency,
      windowStart: this.dateOf(result.startMs),
      windowEnd: this.dateOf(result.endMs),
      // A retracted window (session merged into another) no longer holds anything.
      amountMinor: result.retracted ? 0 : result.sum,
      transactionCount: result.retracted ? 0 : result.count,
      revision: result.revision,
      sourcePartition: partition,
      lastOccurredAt: new Date(result.maxEventTimeMs),
    };
  }

  private stationTrafficWindow(result: WindowResult): StationTrafficWindow {
    const countsByClass: VehicleClassCount[] = [];
    if (!result.retracted) {
      result.countsBySubKey?.forEach((vehicleCount, vehicleClass) => {
        if (vehicleCount > 0) countsByClass.push({ vehicleClass, vehicleCount });
      });
    }
    return {
      resultId: `traffic/${result.key}/${result.startMs}-${result.endMs}/r${result.revision}`,
      stationId: result.key,
      windowStart: new Date(result.startMs),
      windowEnd: new Date(result.endMs),
      timeZone: result.timeZone,
      vehicleCount: result.retracted ? 0 : result.count,
      countsByClass,
      revision: result.revision,
      sourcePartition: this.options.partition,
    };
  }

  /**
   * The processor's state as frames: a header, then the spend engine's chunks, then the traffic
   * engine's. Framing is the caller's (the checkpoint store); here each item is one frame.
   */
  *snapshotFrames(): Generator<SnapshotFrame> {
    yield {
      kind: 'header',
      data: new TextEncoder().encode(
        JSON.stringify({
          format: SNAPSHOT_FORMAT,
          partition: this.options.partition,
          lastSequence: this.lastSequenceProcessed,
          lastPublishedWatermarkMs: this.lastPublishedWatermarkMs,
          spendChain: this.spendChainUnknown ? undefined : [...this.lastSpendPosition].sort((a, b) => a[0] - b[0]),
          spendChainPartial: this.spendChainUnknown ? [...this.lastSpendPosition].sort((a, b) => a[0] - b[0]) : undefined,
        }),
      ),
    };
    for (const data of this.spend.snapshotChunks()) yield { kind: 'customer-spend', data };
    for (const data of this.traffic.snapshotChunks()) yield { kind: 'station-traffic', data };
  }

  static restore(options: PartitionProcessorOptions, frames: Iterable<SnapshotFrame>): PartitionProcessor {
    validateOptions(options);
    let header:
      | {
          format: number;
          partition: number;
          lastSequence: number;
          lastPublishedWatermarkMs: number;
          /** Absent in snapshots taken before spend batches named their predecessor. */
          spendChain?: Array<[number, [number, number]]>;
          /** The shards whose predecessor became known since such a snapshot. */
          spendChainPartial?: Array<[number, [number, number]]>;
        }
      | undefined;
    const spendChunks: Uint8Array[] = [];
    const trafficChunks: Uint8Array[] = [];
    for (const frame of frames) {
      if (frame.kind === 'header') header = JSON.parse(new TextDecoder().decode(frame.data));
      else if (frame.kind === 'customer-spend') spendChunks.push(frame.data);
      else trafficChunks.push(frame.data);
    }
    if (!header || header.format !== SNAPSHOT_FORMAT) throw new Error(`snapshot has no header of format ${SNAPSHOT_FORMAT}`);
    if (header.partition !== options.partition) {
      throw new Error(`snapshot is of partition ${header.partition}, not ${options.partition}`);
    }
    const processor = new PartitionProcessor(
      options,
      WindowEngine.restore(spendEngineOptions(options), spendChunks),
      WindowEngine.restore(trafficEngineOptions(options), trafficChunks),
    );
    processor.lastSequenceProcessed = header.lastSequence;
    processor.lastPublishedWatermarkMs = header.lastPublishedWatermarkMs;
    processor.spendChainUnknown = header.spendChain === undefined;
    for (const [shard, position] of header.spendChain ?? header.spendChainPartial ?? []) processor.lastSpendPosition.set(shard, position);
    return processor;
  }
}

export type SnapshotFrameKind = 'header' | 'customer-spend' | 'station-traffic';
export interface SnapshotFrame {
  kind: SnapshotFrameKind;
  data: Uint8Array;
}

function spendEngineOptions(options: PartitionProcessorOptions): WindowEngineOptions {
  return { ...options.customerSpend, idleTimeoutMs: options.idleTimeoutMs };
}

function trafficEngineOptions(options: PartitionProcessorOptions): WindowEngineOptions {
  return {
    ...options.stationTraffic,
    idleTimeoutMs: options.idleTimeoutMs,
    timeZoneOfKey: options.stationTimeZone,
    subKeyCount: VEHICLE_CLASSES,
  };
}

function validateOptions(options: PartitionProcessorOptions): void {
  const positive: Array<[string, number]> = [
    ['spendShards', options.spendShards],
    ['maxResultsPerMessage', options.maxResultsPerMessage],
    ['watermarkPublishIntervalMs', options.watermarkPublishIntervalMs],
  ];
  for (const [name, value] of positive) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  }
}

function forEachChunk<T>(items: T[], size: number, evenIfEmpty: boolean, action: (chunk: T[], index: number) => void): void {
  if (items.length === 0 && evenIfEmpty) action([], 0);
  for (let start = 0, index = 0; start < items.length; start += size, index++) action(items.slice(start, start + size), index);
}
