/**
 * Ports of traffic-anomaly (ADR 0009): versioned reference thresholds per station, and the detection
 * state of each source partition (watermark, evaluated-up-to, counts and alerts of open slots).
 * Plain JSON documents; the logic lives in @tollstream/traffic.
 */

/** Band of one (weekday, slot) of a reference version. max absent = no congestion limit. */
export interface TrafficBandRecord {
  min: number;
  max?: number;
}

/** One version of a station's reference, effective from effectiveFromMs until the next version. */
export interface TrafficReferenceVersionRecord {
  /** Deterministic: <effective-from ISO>#<content hash>; alerts name it. */
  version: string;
  effectiveFromMs: number;
  /** IANA zone the slots are aligned in (the station's). */
  timeZone: string;
  slotMinutes: number;
  /** Key `<weekday 1=Mon..7=Sun>/<slot index of the local day>`. Slots without a band are not evaluated. */
  bands: Record<string, TrafficBandRecord>;
}

export interface StationReferenceRecord {
  stationId: string;
  /** Sorted by effectiveFromMs ascending, one per effectiveFromMs. */
  versions: TrafficReferenceVersionRecord[];
}

export interface TrafficReferenceStore {
  readonly backend: 'nats-kv' | 'mongodb';
  get(stationId: string): Promise<StationReferenceRecord | undefined>;
  list(): Promise<StationReferenceRecord[]>;
  /**
   * Atomic read-compute-write of one station (compare-and-set, retried on conflict). apply returns
   * the next record, or undefined to change nothing.
   */
  update(stationId: string, apply: (current: StationReferenceRecord | undefined) => StationReferenceRecord | undefined): Promise<StationReferenceRecord | undefined>;
  close(): Promise<void>;
}

/** A station-slot of a partition that had a window or was evaluated. */
export interface TrafficSlotRecord {
  stationId: string;
  startMs: number;
  endMs: number;
  timeZone: string;
  count: number;
  /** Windower revision of the count (0: no window seen, count 0). */
  revision: number;
  /** Set once the slot was evaluated against the reference. */
  evaluation?: {
    version: string;
    min: number;
    max?: number;
    condition: 'below' | 'above' | 'within';
    /** Id of the alert currently open for this slot (below/above not yet resolved). */
    openAlertId?: string;
  };
  /** Every alert id published for this slot (never published twice). */
  alertIds: string[];
}

export interface TrafficPartitionState {
  partition: number;
  /** Highest watermark seen (ms); undefined before the first batch. */
  watermarkMs?: number;
  /** Every slot ending at or before this was evaluated. */
  evaluatedUpToMs?: number;
  /** TOLL_AGG stream sequence of the last input applied: consumption resumes after it. */
  lastStreamSequence?: number;
  /** Key `<station>/<startMs>`. */
  slots: Record<string, TrafficSlotRecord>;
}

export interface StoredPartitionState {
  state: TrafficPartitionState;
  /** Store revision for compare-and-set. */
  revision: number;
}

export class TrafficStateConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrafficStateConflictError';
  }
}

export interface TrafficDetectionStore {
  readonly backend: 'nats-kv' | 'mongodb';
  read(partition: number): Promise<StoredPartitionState | undefined>;
  /** Writes if the stored revision is still expectedRevision (undefined: must not exist); returns the new revision. Throws TrafficStateConflictError otherwise. */
  write(state: TrafficPartitionState, expectedRevision: number | undefined): Promise<number>;
  close(): Promise<void>;
}
