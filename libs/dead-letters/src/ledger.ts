import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';

/** How one re-drive of one dead letter ended. */
export type RedriveOutcome =
  /** The station API stored it now. */
  | 'accepted'
  /** The station API had it already (an earlier re-drive, or the station resent it): nothing new stored. */
  | 'duplicate'
  /** The station API refused it again; the ingestor dead-lettered it again with the reason. */
  | 'rejected-again'
  /** Republished to the subject it came from (deduplicated by its original message id). */
  | 'republished'
  /** Could not be re-driven this time (ingestor unavailable after retries): the next run tries again. */
  | 'failed';

/** Outcomes after which a re-drive leaves the dead letter alone (a rejected one has a newer dead letter). */
export const settledOutcomes: ReadonlySet<RedriveOutcome> = new Set(['accepted', 'duplicate', 'rejected-again', 'republished']);

export type RedriveRoute = 'station-api' | 'republish';

/** The mark on a dead letter that was re-driven: who, when, how, with what result. */
export interface RedriveMark {
  outcome: RedriveOutcome;
  route: RedriveRoute;
  /** Rejection code and reason, the subject republished to, or the error. */
  detail: string;
  by: string;
  at: string;
  runId: string;
}

/** The audit record of one re-drive run. */
export interface RedriveRunRecord {
  runId: string;
  by: string;
  startedAt: string;
  finishedAt: string;
  /** The filter as given (ids, sources, reason codes, stations, time range). */
  filter: Record<string, unknown>;
  selected: number;
  counts: Record<RedriveOutcome | 'not-redrivable' | 'already-redriven', number>;
  /** True when the run stopped early (interrupted or a fatal error). */
  incomplete: boolean;
}

export const defaultLedgerBucket = 'dlq-redrives';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Re-drive marks and run records in a JetStream KV bucket: a dead letter is never deleted, it is
 * marked; the bucket keeps the last marks of each dead letter (history) as the audit trail.
 */
export class RedriveLedger {
  private constructor(private readonly kv: KV) {}

  static async open(js: JetStreamClient, options: { bucket?: string; replicas?: number } = {}): Promise<RedriveLedger> {
    const kv = await new Kvm(js).create(options.bucket ?? defaultLedgerBucket, { history: 16, replicas: options.replicas ?? 1 });
    return new RedriveLedger(kv);
  }

  /** The ledger when a re-drive has ever run, else undefined (read-only callers do not create it). */
  static async openIfExists(js: JetStreamClient, jsm: JetStreamManager, bucket = defaultLedgerBucket): Promise<RedriveLedger | undefined> {
    try {
      await jsm.streams.info(`KV_${bucket}`);
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return undefined;
      throw error;
    }
    return new RedriveLedger(await new Kvm(js).open(bucket));
  }

  async markOf(id: number): Promise<RedriveMark | undefined> {
    const entry = await this.kv.get(`letter.${id}`);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return JSON.parse(decoder.decode(entry.value)) as RedriveMark;
  }

  /** Every re-drive of one dead letter, oldest first (as many as the bucket's history keeps). */
  async historyOf(id: number): Promise<RedriveMark[]> {
    const marks: RedriveMark[] = [];
    for await (const entry of await this.kv.history({ key: `letter.${id}` })) {
      if (entry.operation === 'PUT') marks.push(JSON.parse(decoder.decode(entry.value)) as RedriveMark);
    }
    return marks;
  }

  async mark(id: number, mark: RedriveMark): Promise<void> {
    await this.kv.put(`letter.${id}`, encoder.encode(JSON.stringify(mark)));
  }

  async recordRun(run: RedriveRunRecord): Promise<void> {
    await this.kv.put(`run.${run.runId}`, encoder.encode(JSON.stringify(run)));
  }

  /** Re-drive runs and the latest outcome of every re-driven dead letter, counted (for `tollstream status`). */
  async tally(limit = 1_000_000): Promise<{ runs: number; redriven: number; byOutcome: Partial<Record<RedriveOutcome, number>> }> {
    let runs = 0;
    let redriven = 0;
    const byOutcome: Partial<Record<RedriveOutcome, number>> = {};
    const keys: string[] = [];
    for await (const key of await this.kv.keys()) {
      if (keys.length >= limit) break;
      keys.push(key);
    }
    for (const key of keys) {
      if (key.startsWith('run.')) {
        runs++;
        continue;
      }
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== 'PUT') continue;
      const mark = JSON.parse(decoder.decode(entry.value)) as RedriveMark;
      redriven++;
      byOutcome[mark.outcome] = (byOutcome[mark.outcome] ?? 0) + 1;
    }
    return { runs, redriven, byOutcome };
  }

  async runs(): Promise<RedriveRunRecord[]> {
    const records: RedriveRunRecord[] = [];
    for await (const key of await this.kv.keys('run.>')) {
      const entry = await this.kv.get(key);
      if (entry && entry.operation === 'PUT') records.push(JSON.parse(decoder.decode(entry.value)) as RedriveRunRecord);
    }
    return records.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }
}
