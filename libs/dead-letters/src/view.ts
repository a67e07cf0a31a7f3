import {
  Alert,
  CustomerSpendBatch,
  CustomerSpendWindow,
  IngestedTransaction,
  SpendingThresholdChanged,
  SpendingThresholdCommand,
  StationTrafficBatch,
  StationTrafficWindow,
  TollTransaction,
  TransactionBatch,
  vehicleClassToJSON,
  type DeadLetter,
} from '@tollstream/contracts';
import { vehicleClassShortNames } from '@tollstream/station-sender';
import type { RedriveMark } from './ledger';

interface ProtoType {
  name: string;
  decode(bytes: Uint8Array): unknown;
  encode(message: never): { finish(): Uint8Array };
  toJSON(message: never): unknown;
}

const type = <T>(name: string, fns: { decode(bytes: Uint8Array): T; encode(message: T): { finish(): Uint8Array }; toJSON(message: T): unknown }): ProtoType => ({
  name,
  decode: (bytes) => fns.decode(bytes),
  encode: (message: never) => fns.encode(message),
  toJSON: (message: never) => fns.toJSON(message),
});

const types = {
  tollTransaction: type('tolls.ingest.v1.TollTransaction', TollTransaction),
  transactionBatch: type('tolls.stream.v1.TransactionBatch', TransactionBatch),
  ingestedTransaction: type('tolls.stream.v1.IngestedTransaction', IngestedTransaction),
  spendBatch: type('tolls.stream.v1.CustomerSpendBatch', CustomerSpendBatch),
  spendWindow: type('tolls.stream.v1.CustomerSpendWindow', CustomerSpendWindow),
  thresholdCommand: type('tolls.accounts.v1.SpendingThresholdCommand', SpendingThresholdCommand),
  trafficBatch: type('tolls.stream.v1.StationTrafficBatch', StationTrafficBatch),
  trafficWindow: type('tolls.stream.v1.StationTrafficWindow', StationTrafficWindow),
  alert: type('tolls.alerts.v1.Alert', Alert),
  thresholdChanged: type('tolls.accounts.v1.SpendingThresholdChanged', SpendingThresholdChanged),
};

/**
 * What the original bytes may be, most likely first, from where they came: a whole stream message,
 * or one record of it (billing and the loader dead-letter single records of a batch).
 */
export function candidateTypes(source: string, originalSubject: string): ProtoType[] {
  if (source === 'ingestor') return [types.tollTransaction];
  if (originalSubject.startsWith('tolls.tx.') || originalSubject.startsWith('tolls.agg.late.')) return [types.transactionBatch, types.ingestedTransaction];
  if (originalSubject.startsWith('tolls.agg.spend.')) return [types.spendBatch, types.spendWindow, types.ingestedTransaction, types.thresholdCommand];
  if (originalSubject.startsWith('tolls.agg.traffic.')) return [types.trafficBatch, types.trafficWindow];
  if (originalSubject.startsWith('tolls.alerts.')) return [types.alert];
  if (originalSubject.startsWith('tolls.accounts.')) return [types.thresholdChanged];
  return [];
}

export interface DecodedOriginal {
  /** Protobuf message type, or undefined when none of the expected types fits. */
  type?: string;
  /** The decoded record (proto JSON), when it fits a type. */
  value?: unknown;
  /** The bytes, base64, when they fit no type. */
  base64?: string;
  bytes: number;
}

/**
 * Decodes the original with the first expected type whose re-encoding gives back the same bytes
 * (protobuf decodes many wrong types without an error: a round trip is the check that it fits).
 */
export function decodeOriginal(source: string, originalSubject: string, original: Uint8Array): DecodedOriginal {
  for (const candidate of candidateTypes(source, originalSubject)) {
    try {
      const message = candidate.decode(original);
      const again = candidate.encode(message as never).finish();
      if (Buffer.compare(Buffer.from(again), Buffer.from(original)) === 0) {
        return { type: candidate.name, value: candidate.toJSON(message as never), bytes: original.byteLength };
      }
    } catch {
      // not this type: try the next
    }
  }
  return { base64: Buffer.from(original).toString('base64'), bytes: original.byteLength };
}

/** One dead letter as operators see it. */
export interface DeadLetterView {
  /** Its TOLL_DLQ stream sequence: stable, what `show` and `redrive` take. */
  id: number;
  subject: string;
  source: string;
  reasonCode: string;
  reason: string;
  stationId: string;
  deadLetteredAt: string | null;
  originalSubject: string;
  originalMsgId: string;
  /** Latest re-drive of this dead letter, if any (never deleted: marked). */
  redrive: RedriveMark | null;
}

export function viewOf(id: number, subject: string, letter: DeadLetter, redrive: RedriveMark | undefined): DeadLetterView {
  return {
    id,
    subject,
    source: letter.source,
    reasonCode: letter.reasonCode,
    reason: letter.reason,
    stationId: letter.stationId,
    deadLetteredAt: letter.deadLetteredAt ? letter.deadLetteredAt.toISOString() : null,
    originalSubject: letter.originalSubject,
    originalMsgId: letter.originalMsgId,
    redrive: redrive ?? null,
  };
}

const shortVehicleClass = new Map(Object.entries(vehicleClassShortNames).map(([short, value]) => [value, short]));

/**
 * A station record in the NDJSON form `tollstream send` reads (the proto field names), so that an
 * operator can export, fix by hand and send back. Fields the station left empty are left out.
 */
export function stationRecordOf(transaction: TollTransaction): Record<string, string | number> {
  const record: Record<string, string | number> = {
    transaction_id: transaction.transactionId,
    station_id: transaction.stationId,
    lane_id: transaction.laneId,
  };
  if (transaction.tagId) record.tag_id = transaction.tagId;
  if (transaction.plate) record.plate = transaction.plate;
  if (transaction.accountId) record.account_id = transaction.accountId;
  record.vehicle_class = shortVehicleClass.get(transaction.vehicleClass) ?? vehicleClassToJSON(transaction.vehicleClass);
  record.amount_minor = transaction.amountMinor;
  record.currency = transaction.currency;
  if (transaction.occurredAt && !Number.isNaN(transaction.occurredAt.getTime())) record.occurred_at = transaction.occurredAt.toISOString();
  return record;
}
