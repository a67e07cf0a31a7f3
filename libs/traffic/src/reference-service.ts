import * as grpc from '@grpc/grpc-js';
import {
  ReferenceChange,
  Weekday,
  type GetStationReferenceRequest,
  type GetStationReferenceResponse,
  type ListStationReferencesRequest,
  type ListStationReferencesResponse,
  type PutStationReferenceRequest,
  type PutStationReferenceResponse,
  type SlotBand,
  type StationReference,
  type StationReferenceVersion,
  type TrafficReferenceServiceServer,
} from '@tollstream/contracts';
import { grpcStatusError, hasServiceCredential, invalidArgumentError, InvalidArgumentError, retryLaterError, type Logger } from '@tollstream/service-kit';
import type { StationReferenceRecord, TrafficReferenceStore, TrafficReferenceVersionRecord } from '@tollstream/stores';
import { mergeReferenceVersion, parseReferenceFile, planReferenceChanges, ReferenceFileInvalid } from './reference';

const weekdayNames = ['', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const fieldOfColumn: Record<string, string> = {
  station_id: 'station_id',
  effective_from: 'effective_from',
  time_zone: 'time_zone',
  slot_minutes: 'slot_minutes',
  weekday: 'weekday',
  slot_start: 'start_minute',
  min: 'minimum',
  max: 'maximum',
};
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 500;

function versionMessage(record: TrafficReferenceVersionRecord): StationReferenceVersion {
  const bands: SlotBand[] = Object.entries(record.bands)
    .map(([key, band]) => {
      const [weekday, index] = key.split('/').map(Number);
      return { weekday: weekday as Weekday, startMinute: index * record.slotMinutes, minimum: band.min, ...(band.max !== undefined ? { maximum: band.max } : {}) };
    })
    .sort((a, b) => a.weekday - b.weekday || a.startMinute - b.startMinute);
  return { version: record.version, effectiveFrom: new Date(record.effectiveFromMs), timeZone: record.timeZone, slotMinutes: record.slotMinutes, bands };
}

function referenceMessage(record: StationReferenceRecord): StationReference {
  return { stationId: record.stationId, versions: record.versions.map(versionMessage) };
}

/** Validates a put with the file parser (one rule set); errors name the request's fields. */
function parsePut(request: PutStationReferenceRequest) {
  if (!request.effectiveFrom) throw new InvalidArgumentError('effective_from', 'is required');
  if (request.bands.length === 0) throw new InvalidArgumentError('bands', 'at least one band is required');
  const document = {
    references: [
      {
        station_id: request.stationId,
        effective_from: request.effectiveFrom.toISOString(),
        time_zone: request.timeZone,
        slot_minutes: request.slotMinutes || 30,
        slots: request.bands.map((band) => ({
          weekday: weekdayNames[band.weekday] ?? 'unspecified',
          start: band.startMinute < 1440 ? `${String(Math.floor(band.startMinute / 60)).padStart(2, '0')}:${String(band.startMinute % 60).padStart(2, '0')}` : 'invalid',
          min: band.minimum,
          max: band.maximum,
        })),
      },
    ],
  };
  try {
    return parseReferenceFile(JSON.stringify(document), 'json')[0];
  } catch (error) {
    if (!(error instanceof ReferenceFileInvalid)) throw error;
    const first = error.errors[0];
    const index = /slots\[(\d+)\]/.exec(first.path ?? '')?.[1];
    const field = fieldOfColumn[first.field] ?? first.field;
    const scoped = index !== undefined && ['weekday', 'start_minute', 'minimum', 'maximum'].includes(field) ? `bands[${index}].${field}` : field;
    throw new InvalidArgumentError(scoped, first.message.replace('local time HH:MM', 'minutes after local midnight (< 1440)'));
  }
}

/** tolls.traffic.v1.TrafficReferenceService (put, get, list), authenticated with a bearer token. */
export function createTrafficReferenceService(options: { store: TrafficReferenceStore; token: string; logger: Logger }): TrafficReferenceServiceServer {
  const { store, logger } = options;
  const unary =
    <Req, Res>(method: string, body: (request: Req) => Promise<Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
      if (!hasServiceCredential(call.metadata, options.token)) {
        callback(grpcStatusError(grpc.status.UNAUTHENTICATED, 'a service credential is required: metadata "authorization: Bearer <token>"'));
        return;
      }
      body(call.request).then(
        (response) => callback(null, response),
        (error: unknown) => {
          if (error instanceof InvalidArgumentError) return callback(invalidArgumentError(error));
          if (error instanceof NotFound) return callback(grpcStatusError(grpc.status.NOT_FOUND, error.message));
          logger.error({ err: error, method }, 'traffic reference call failed');
          callback(retryLaterError(grpc.status.UNAVAILABLE, 'the reference store is unavailable; retry (puts are idempotent)'));
        },
      );
    };

  return {
    putStationReference: unary('PutStationReference', async (request: PutStationReferenceRequest): Promise<PutStationReferenceResponse> => {
      const parsed = parsePut(request);
      const current = await store.get(parsed.stationId);
      const [plan] = planReferenceChanges(new Map(current ? [[parsed.stationId, current]] : []), [parsed]);
      if (!request.dryRun) await store.update(parsed.stationId, (record) => mergeReferenceVersion(record, parsed));
      const { stationId: _stationId, ...version } = parsed;
      return {
        version: versionMessage(version),
        change: plan.action === 'add' ? ReferenceChange.REFERENCE_CHANGE_ADDED : plan.action === 'replace' ? ReferenceChange.REFERENCE_CHANGE_REPLACED : ReferenceChange.REFERENCE_CHANGE_UNCHANGED,
        previousVersion: plan.previousVersion ?? '',
      };
    }),

    getStationReference: unary('GetStationReference', async (request: GetStationReferenceRequest): Promise<GetStationReferenceResponse> => {
      if (!request.stationId) throw new InvalidArgumentError('station_id', 'is required');
      const record = await store.get(request.stationId);
      if (!record) throw new NotFound(`station ${request.stationId} has no reference data`);
      return { reference: referenceMessage(record) };
    }),

    listStationReferences: unary('ListStationReferences', async (request: ListStationReferencesRequest): Promise<ListStationReferencesResponse> => {
      if (request.pageSize > MAX_PAGE_SIZE) throw new InvalidArgumentError('page_size', `must be at most ${MAX_PAGE_SIZE} (0 for ${DEFAULT_PAGE_SIZE})`);
      const pageSize = request.pageSize || DEFAULT_PAGE_SIZE;
      let after = '';
      if (request.pageToken) {
        const decoded = /^after:(.+)$/.exec(Buffer.from(request.pageToken, 'base64url').toString('utf8'));
        if (!decoded) throw new InvalidArgumentError('page_token', 'is not a token this service issued');
        after = decoded[1];
      }
      const all = (await store.list()).filter((record) => record.stationId > after);
      const page = all.slice(0, pageSize);
      return {
        references: page.map(referenceMessage),
        nextPageToken: all.length > pageSize ? Buffer.from(`after:${page[page.length - 1].stationId}`, 'utf8').toString('base64url') : '',
      };
    }),
  };
}

class NotFound extends Error {}
