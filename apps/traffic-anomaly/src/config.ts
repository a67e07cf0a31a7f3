import { brokerConfigShape } from '@tollstream/messaging';
import { durationMsSchema, grpcTlsConfigShape, portSchema } from '@tollstream/service-kit';
import { z } from 'zod';

/** The windower's TRAFFIC_WINDOW ("tumbling:30m"): traffic-anomaly only supports tumbling slots. */
const trafficWindowSchema = z
  .string()
  .regex(/^tumbling:\S+$/, { message: "must be tumbling:<duration> (the windower's TRAFFIC_WINDOW), e.g. tumbling:30m" })
  .transform((value, ctx) => {
    const parsed = durationMsSchema.safeParse(value.slice('tumbling:'.length));
    const ms = parsed.success ? parsed.data : NaN;
    if (!(ms >= 60_000 && ms % 60_000 === 0 && 86_400_000 % ms === 0)) {
      ctx.addIssue({ code: 'custom', message: 'slot length must be whole minutes dividing a day, e.g. tumbling:30m' });
      return z.NEVER;
    }
    return ms;
  });

/** Every environment variable traffic-anomaly reads. */
export const trafficConfigSchema = z
  .object({
    ...brokerConfigShape,
    /** In-process TLS (ADR 0017); unset: plaintext. */
    ...grpcTlsConfigShape,
    TRAFFIC_HTTP_PORT: portSchema.default(9468),
    TRAFFIC_GRPC_HOST: z.string().default('0.0.0.0'),
    /** tolls.traffic.v1.TrafficReferenceService (put, get, list reference data). */
    TRAFFIC_GRPC_PORT: portSchema.default(50054),
    /** File holding the bearer token of TrafficReferenceService clients (a mounted secret); or the token itself in TRAFFIC_API_TOKEN. */
    TRAFFIC_API_TOKEN_FILE: z.string().min(1).optional(),
    TRAFFIC_API_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),

    /** nats-kv: the embedded store (JetStream KV, local run and CI); mongodb: the production store. */
    TRAFFIC_STORE: z.enum(['nats-kv', 'mongodb']).default('nats-kv'),
    MONGODB_URI: z.string().min(1).optional(),
    MONGODB_DATABASE: z.string().min(1).default('tollstream'),
    TRAFFIC_REFERENCE_KV_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/).default('traffic-references'),
    TRAFFIC_STATE_KV_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/).default('traffic-detection'),
    /** Must equal the windower's TRAFFIC_WINDOW; references with another slot length are not evaluated. */
    TRAFFIC_WINDOW: z.string().default('tumbling:30m').pipe(trafficWindowSchema),
    /** Evaluate a slot once the partition's watermark is this far past the slot end (0: at close; late amendments then resolve). */
    TRAFFIC_ALERT_GRACE: durationMsSchema.default(0),
    /** The windower's TRAFFIC_ALLOWED_LATENESS: how long slot state is kept for amendments. */
    TRAFFIC_ALLOWED_LATENESS: durationMsSchema.default(60 * 60_000),
    /** At most this much history is evaluated when a partition is first seen or after a long gap. */
    TRAFFIC_MAX_CATCH_UP: durationMsSchema.default(86_400_000),
    /** How often reference data is re-read from the store. */
    TRAFFIC_REFERENCE_REFRESH: durationMsSchema.default(10_000),
    /** A partition with no StationTrafficBatch for this long is reported stale (windower down?). */
    TRAFFIC_STALE_PARTITION_AFTER: durationMsSchema.default(30_000),

    /** Input messages applied per round (one state write per partition per round). */
    TRAFFIC_MAX_MESSAGES_PER_ROUND: z.coerce.number().int().min(1).max(10_000).default(256),

    SHUTDOWN_GRACE_MS: durationMsSchema.default(20_000),
    LOG_LEVEL: z.string().default('info'),
  })
  .refine((config) => config.TRAFFIC_API_TOKEN_FILE !== undefined || config.TRAFFIC_API_TOKEN !== undefined, {
    message: 'set TRAFFIC_API_TOKEN_FILE (or TRAFFIC_API_TOKEN): the credential of TrafficReferenceService clients',
    path: ['TRAFFIC_API_TOKEN_FILE'],
  })
  .refine((config) => config.TRAFFIC_STORE !== 'mongodb' || config.MONGODB_URI !== undefined, {
    message: 'required when TRAFFIC_STORE=mongodb',
    path: ['MONGODB_URI'],
  });

export type TrafficConfig = z.infer<typeof trafficConfigSchema>;
