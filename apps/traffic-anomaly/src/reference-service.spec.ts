import * as grpc from '@grpc/grpc-js';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  ReferenceChange,
  TrafficReferenceServiceClient,
  TrafficReferenceServiceService,
  Weekday,
  type GetStationReferenceResponse,
  type ListStationReferencesResponse,
  type PutStationReferenceRequest,
  type PutStationReferenceResponse,
} from '@tollstream/contracts';
import { createLogger, detailsOfStatus, startGrpcServer, statusOfTrailers, type GrpcServerHandle } from '@tollstream/service-kit';
import { KvTrafficReferenceStore } from '@tollstream/stores';
import { startNats, type NatsHandle } from '@tollstream/testing';
import { createTrafficReferenceService } from '@tollstream/traffic';

const TOKEN = 'traffic-api-token-for-tests-01';
let nats: NatsHandle;
let nc: NatsConnection;
let server: GrpcServerHandle;
let client: TrafficReferenceServiceClient;

function call<Res>(method: 'putStationReference' | 'getStationReference' | 'listStationReferences', request: unknown, token: string | undefined = TOKEN): Promise<Res> {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  type Unary = (request: unknown, metadata: grpc.Metadata, callback: (error: grpc.ServiceError | null, value: unknown) => void) => void;
  return new Promise((resolve, reject) => (client[method] as unknown as Unary).call(client, request, metadata, (error, value) => (error ? reject(error) : resolve(value as Res))));
}

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  const store = await KvTrafficReferenceStore.open(jetstream(nc), { bucket: 'reference-api-spec' });
  const logger = createLogger({ service: 'reference-service-spec', level: 'silent' });
  server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    logger,
    services: [{ name: 'tolls.traffic.v1.TrafficReferenceService', definition: TrafficReferenceServiceService, implementation: createTrafficReferenceService({ store, token: TOKEN, logger }) }],
  });
  client = new TrafficReferenceServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await server?.shutdown(1_000);
  await nc?.close();
  await nats?.stop();
});

const put = (overrides: Partial<PutStationReferenceRequest> = {}): PutStationReferenceRequest => ({
  stationId: 'st-001',
  effectiveFrom: new Date('2026-11-01T00:00:00Z'),
  timeZone: 'Asia/Kathmandu',
  slotMinutes: 30,
  bands: [
    { weekday: Weekday.WEEKDAY_MONDAY, startMinute: 450, minimum: 10, maximum: 80 },
    { weekday: Weekday.WEEKDAY_MONDAY, startMinute: 480, minimum: 12 },
  ],
  dryRun: false,
  ...overrides,
});

describe('TrafficReferenceService', () => {
  it('puts (dry run, add, unchanged, new version), gets and lists', async () => {
    const dry = await call<PutStationReferenceResponse>('putStationReference', put({ dryRun: true }));
    expect(dry.change).toBe(ReferenceChange.REFERENCE_CHANGE_ADDED);
    await expect(call('getStationReference', { stationId: 'st-001' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    const added = await call<PutStationReferenceResponse>('putStationReference', put());
    expect(added.change).toBe(ReferenceChange.REFERENCE_CHANGE_ADDED);
    expect(added.version?.version).toMatch(/^2026-11-01T00:00:00.000Z#/);
    expect((await call<PutStationReferenceResponse>('putStationReference', put())).change).toBe(ReferenceChange.REFERENCE_CHANGE_UNCHANGED);
    await call('putStationReference', put({ effectiveFrom: new Date('2026-12-01T00:00:00Z') }));
    await call('putStationReference', put({ stationId: 'st-002' }));
    const got = await call<GetStationReferenceResponse>('getStationReference', { stationId: 'st-001' });
    expect(got.reference?.versions.map((version) => version.effectiveFrom?.toISOString())).toEqual(['2026-11-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z']);
    expect(got.reference?.versions[0].bands).toEqual([
      { weekday: Weekday.WEEKDAY_MONDAY, startMinute: 450, minimum: 10, maximum: 80 },
      { weekday: Weekday.WEEKDAY_MONDAY, startMinute: 480, minimum: 12 },
    ]);
    const page1 = await call<ListStationReferencesResponse>('listStationReferences', { pageSize: 1, pageToken: '' });
    expect(page1.references.map((reference) => reference.stationId)).toEqual(['st-001']);
    const page2 = await call<ListStationReferencesResponse>('listStationReferences', { pageSize: 1, pageToken: page1.nextPageToken });
    expect(page2.references.map((reference) => reference.stationId)).toEqual(['st-002']);
    expect(page2.nextPageToken).toBe('');
  });

  it('rejects invalid requests naming the field, and calls without the credential', async () => {
    await expect(call('putStationReference', put({ timeZone: 'Mars/Base' }))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^time_zone: /) });
    await expect(call('putStationReference', put({ bands: [{ weekday: Weekday.WEEKDAY_MONDAY, startMinute: 450, minimum: 10, maximum: 5 }] }))).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'bands[0].maximum: must be >= min (10)',
    });
    // The same, machine-readable: a google.rpc.BadRequest in the grpc-status-details-bin trailer.
    const error = (await call('putStationReference', put({ bands: [{ weekday: Weekday.WEEKDAY_MONDAY, startMinute: 450, minimum: 10, maximum: 5 }] })).catch((e: unknown) => e)) as grpc.ServiceError;
    const status = statusOfTrailers(error.metadata);
    expect(status && detailsOfStatus(status)).toEqual({ fieldViolations: [{ field: 'bands[0].maximum', description: 'must be >= min (10)' }] });
    await expect(call('putStationReference', put({ bands: [{ weekday: Weekday.WEEKDAY_UNSPECIFIED, startMinute: 450, minimum: 1 }] }))).rejects.toMatchObject({ details: expect.stringMatching(/^bands\[0\]\.weekday: /) });
    await expect(call('putStationReference', put({ effectiveFrom: undefined }))).rejects.toMatchObject({ details: 'effective_from: is required' });
    await expect(call('getStationReference', { stationId: 'st-001' }, 'wrong-token-wrong-token')).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  });
});
