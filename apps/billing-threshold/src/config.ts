import { brokerConfigShape } from '@tollstream/messaging';
import { isValidTimeZone } from '@tollstream/billing';
import { durationMsSchema, grpcTlsConfigShape, portSchema } from '@tollstream/service-kit';
import { z } from 'zod';

const timeZoneSchema = z.string().refine(isValidTimeZone, { message: 'not an IANA time zone (e.g. UTC, America/New_York)' });

/** Every environment variable billing-threshold reads. The Helm chart sets exactly these. */
export const billingConfigSchema = z
  .object({
    ...brokerConfigShape,
    /** In-process TLS (ADR 0017); unset: plaintext. */
    ...grpcTlsConfigShape,
    BILLING_GRPC_HOST: z.string().default('0.0.0.0'),
    /** tolls.accounts.v1.AccountService for the mobile backend. */
    BILLING_GRPC_PORT: portSchema.default(50053),
    BILLING_HTTP_PORT: portSchema.default(9467),
    /** File holding the mobile backend's bearer token (a mounted secret); or the token itself in ACCOUNT_API_TOKEN. */
    ACCOUNT_API_TOKEN_FILE: z.string().min(1).optional(),
    ACCOUNT_API_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),

    /**
     * shard-state (ADR 0013): each instance owns spend shards and keeps their accounts in memory,
     * fed by the shard's records in order, snapshotted, and written to the store in bulk.
     * per-result (ADR 0008): one atomic store update per window result; kept for one release so that a
     * deployment with a store of that design keeps running until it is migrated (docs/billing.md).
     */
    BILLING_ENGINE: z.enum(['shard-state', 'per-result']).default('shard-state'),
    /** Spend shards (tolls.agg.spend.<shard>): must equal the windower's SPEND_SHARDS. */
    SPEND_SHARDS: z.coerce.number().int().min(1).max(1024).default(8),
    /** Unique per process (lease owner); default: host name + random suffix. */
    BILLING_INSTANCE_ID: z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').optional(),
    /** A shard whose owner stopped renewing is taken over after this. */
    BILLING_LEASE_TTL: durationMsSchema.default(10_000),
    BILLING_LEASE_RENEW_INTERVAL: durationMsSchema.default(2_000),
    /** How often a shard's state is snapshotted (restart = snapshot + replay of what came after). */
    BILLING_SNAPSHOT_INTERVAL: durationMsSchema.default(60_000),
    /** How often changed accounts are written to the store in one bulk write: reads from the store are at most this stale. */
    BILLING_FLUSH_INTERVAL: durationMsSchema.default(1_000),
    BILLING_MAX_PUBLISHES_IN_FLIGHT: z.coerce.number().int().min(1).max(100_000).default(1_024),
    /** Messages fetched ahead per shard: 512 stalled the ordered consumer on batches of 1,000 results (bench, 2026-12-06); 32 and 128 did not. */
    BILLING_FETCH_AHEAD: z.coerce.number().int().min(1).max(10_000).default(16),
    /** Changed accounts the instance holds unwritten, shared by its shards: past its share a shard waits for its flush under way (bounds the memory of flushes). */
    BILLING_MAX_UNFLUSHED_ACCOUNTS: z.coerce.number().int().min(1).max(10_000_000).default(160_000),
    /** A spend batch that came before its predecessor waits at most this (log time) before it is applied anyway. */
    BILLING_GAP_TIMEOUT: durationMsSchema.default(10 * 60_000),
    BILLING_MAX_HELD_BATCHES: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
    /** shard-state with nats-kv: prefix of the read model's buckets, one per spend shard, accounts packed in pages (ADR 0013 amendment 3). */
    BILLING_STATE_KV_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/).default('billing-pages'),
    /** nats-kv: prefix of the one-entry-per-record read model of earlier versions, copied into a new paged bucket once. */
    BILLING_STATE_KV_PREVIOUS_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/).default('billing-state'),
    /** nats-kv: pages per spend shard of a new read-model bucket (an existing bucket keeps its own; a page must stay under the broker's max_payload). */
    BILLING_STATE_PAGES: z.coerce.number().int().min(1).max(65_536).default(512),
    /** How long SetSpendingThreshold / ClearSpendingThreshold wait for the shard's owner to apply the change. */
    BILLING_COMMAND_TIMEOUT: durationMsSchema.default(10_000),
    /** How long a read waits for the shard's owner before it reads the store. */
    BILLING_QUERY_TIMEOUT: durationMsSchema.default(1_000),
    /**
     * shard-state finding the store of the per-result design (BILLING_KV_BUCKET / billing_accounts)
     * and no state of its own: refuse to start (default), or rebuild from TOLL_AGG (totals of results
     * older than the stream's retention are then not counted).
     */
    BILLING_ON_LEGACY_STATE: z.enum(['refuse', 'rebuild']).default('refuse'),

    /** nats-kv: the embedded store (JetStream KV, local run and CI); mongodb: the production store. */
    BILLING_STORE: z.enum(['nats-kv', 'mongodb']).default('nats-kv'),
    MONGODB_URI: z.string().min(1).optional(),
    MONGODB_DATABASE: z.string().min(1).default('tollstream'),
    BILLING_KV_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/).default('billing-accounts'),
    /** nats-kv: accounts whose last written entry is kept to skip the read before a compare-and-set (0 = none; ADR 0008 amendment). */
    BILLING_KV_CACHED_ACCOUNTS: z.coerce.number().int().min(0).max(10_000_000).default(250_000),
    /** nats-kv: bound of that cache by size (documents' JSON + a fixed overhead per account; 0 = by count only; ADR 0008 amendment 2). */
    BILLING_KV_CACHE_MAX_BYTES: z.coerce.number().int().min(0).max(16 * 1024 ** 3).default(256 * 1024 ** 2),

    /** Zone new accounts' calendar months are counted in. */
    OPERATOR_TIME_ZONE: timeZoneSchema.default('UTC'),
    /** A month's ledger of applied results is dropped this long after the month ended (> TOLL_AGG retention + lateness). */
    BILLING_LEDGER_RETENTION: durationMsSchema.default(35 * 86_400_000),
    BILLING_MAX_THRESHOLD_MINOR: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(100_000_000),

    /** Durable consumer names are <name>-spend and <name>-late-spend; instances with the same name share the work. */
    BILLING_CONSUMER_NAME: z.string().regex(/^[A-Za-z0-9_-]+$/).default('billing'),
    /** An unacknowledged round is redelivered after this (e.g. to another instance after a crash). */
    BILLING_ACK_WAIT: durationMsSchema.default(30_000),
    BILLING_MAX_MESSAGES_PER_ROUND: z.coerce.number().int().min(1).max(10_000).default(64),
    /** Rounds applied at once (each acknowledged after its own updates; an account is never in two rounds' updates at once). */
    BILLING_MAX_ROUNDS_IN_FLIGHT: z.coerce.number().int().min(1).max(64).default(4),
    BILLING_MAX_ACK_PENDING: z.coerce.number().int().min(1).max(1_000_000).default(4_096),
    /** Account updates in flight, shared by the rounds in flight (512 measured slower than 128: ADR 0008 amendment 2). */
    BILLING_ACCOUNT_CONCURRENCY: z.coerce.number().int().min(1).max(1_024).default(128),
    /** How often outboxes left by a crash (alerts stored, publication unconfirmed) are looked for; also at start-up. */
    BILLING_OUTBOX_SWEEP_INTERVAL: durationMsSchema.default(30_000),

    SHUTDOWN_GRACE_MS: durationMsSchema.default(20_000),
    LOG_LEVEL: z.string().default('info'),
  })
  .refine((config) => config.ACCOUNT_API_TOKEN_FILE !== undefined || config.ACCOUNT_API_TOKEN !== undefined, {
    message: 'set ACCOUNT_API_TOKEN_FILE (or ACCOUNT_API_TOKEN): the mobile backend credential',
    path: ['ACCOUNT_API_TOKEN_FILE'],
  })
  .refine((config) => config.BILLING_LEASE_RENEW_INTERVAL * 2 <= config.BILLING_LEASE_TTL, {
    message: 'BILLING_LEASE_RENEW_INTERVAL must be at most half of BILLING_LEASE_TTL',
    path: ['BILLING_LEASE_RENEW_INTERVAL'],
  })
  .refine((config) => config.BILLING_STORE !== 'mongodb' || config.MONGODB_URI !== undefined, {
    message: 'required when BILLING_STORE=mongodb',
    path: ['MONGODB_URI'],
  });

export type BillingConfig = z.infer<typeof billingConfigSchema>;
