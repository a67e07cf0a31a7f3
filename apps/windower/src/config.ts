import { brokerConfigShape } from '@tollstream/messaging';
import { durationMsSchema, portSchema, tlsConfigShape } from '@tollstream/service-kit';
import { isValidTimeZone, windowSpecSchema } from '@tollstream/windower';
import { z } from 'zod';

const timeZoneSchema = z.string().refine(isValidTimeZone, { message: 'not an IANA time zone (e.g. UTC, America/New_York)' });

/** Every environment variable the windower reads. The Helm chart sets exactly these. */
export const windowerConfigSchema = z.object({
  ...brokerConfigShape,
  /** In-process TLS (ADR 0017); unset: plaintext. */
  ...tlsConfigShape,
  WINDOWER_HTTP_PORT: portSchema.default(9465),
  /** Unique per process; defaults to host name + random suffix (a pod name in Kubernetes). */
  WINDOWER_INSTANCE_ID: z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').optional(),

  /** Customer spend per account. 1 s tumbling windows let a spending alert follow a breach in about a second; tumbling:10m is the reference design. */
  SPEND_WINDOW: z.string().default('tumbling:500ms').pipe(windowSpecSchema),
  /** Half a second: with 1-second windows a spending alert follows the breaching record within about 1.5 s (ADR 0012); later records become amendments. */
  SPEND_OUT_OF_ORDERNESS: durationMsSchema.default(500),
  SPEND_ALLOWED_LATENESS: durationMsSchema.default(10_000),
  /** Spend results are sharded by account over tolls.agg.spend.<shard> for readers that scale out. */
  SPEND_SHARDS: z.coerce.number().int().min(1).max(1024).default(8),
  /** Station traffic: 30-minute slots of the station's local day, like the reference data. */
  TRAFFIC_WINDOW: z.string().default('tumbling:30m').pipe(windowSpecSchema),
  TRAFFIC_OUT_OF_ORDERNESS: durationMsSchema.default(1_000),
  TRAFFIC_ALLOWED_LATENESS: durationMsSchema.default(60 * 60_000),
  /** Zone of the operator: aligns spend windows (e.g. daily) and stations not listed in the file below. */
  OPERATOR_TIME_ZONE: timeZoneSchema.default('UTC'),
  /** JSON {"stations": {"<station id>": "<IANA zone>"}}; optional. */
  STATION_TIME_ZONES_FILE: z.string().optional(),
  /** A partition without records for this long lets its watermark follow the clock (a silent partition stalls nothing). */
  WINDOW_IDLE_TIMEOUT: durationMsSchema.default(2_000),
  /** How often an idle owned partition gets a heartbeat appended (time passing, recorded in the stream). */
  WINDOWER_HEARTBEAT_INTERVAL: durationMsSchema.default(1_000),

  WINDOWER_CHECKPOINT_INTERVAL: durationMsSchema.default(5_000),
  /** refuse: do not start when the window settings changed since results were published; recompute: recompute from the stream's start. */
  WINDOWER_ON_CONFIGURATION_CHANGE: z.enum(['refuse', 'recompute']).default('refuse'),
  /** A dead instance's partitions move to the others after at most about this long. */
  WINDOWER_LEASE_TTL: durationMsSchema.default(10_000),
  WINDOWER_LEASE_RENEW_INTERVAL: durationMsSchema.default(2_000),
  /** Results per output message; 2,000 results of the longest ids stay well under the 1 MiB message limit. */
  WINDOWER_MAX_RESULTS_PER_MESSAGE: z.coerce.number().int().min(1).max(4_000).default(2_000),
  WINDOWER_MAX_PUBLISHES_IN_FLIGHT: z.coerce.number().int().min(1).max(10_000).default(256),

  SHUTDOWN_GRACE_MS: durationMsSchema.default(20_000),
  LOG_LEVEL: z.string().default('info'),
}).refine((config) => config.WINDOWER_LEASE_RENEW_INTERVAL * 2 <= config.WINDOWER_LEASE_TTL, {
  message: 'WINDOWER_LEASE_RENEW_INTERVAL must be at most half of WINDOWER_LEASE_TTL',
  path: ['WINDOWER_LEASE_RENEW_INTERVAL'],
});

export type WindowerConfig = z.infer<typeof windowerConfigSchema>;
