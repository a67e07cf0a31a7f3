import { brokerConfigShape } from '@tollstream/messaging';
import { durationMsSchema, grpcTlsConfigShape, portSchema } from '@tollstream/service-kit';
import { z } from 'zod';

/** Every environment variable the notifier reads. The Helm chart sets exactly these. */
export const notifierConfigSchema = z
  .object({
    ...brokerConfigShape,
    /** In-process TLS (ADR 0017); unset: plaintext. */
    ...grpcTlsConfigShape,
    NOTIFIER_GRPC_HOST: z.string().default('0.0.0.0'),
    /** tolls.notifications.v1.NotificationService for the mobile backend. */
    NOTIFIER_GRPC_PORT: portSchema.default(50055),
    NOTIFIER_HTTP_PORT: portSchema.default(9469),
    /** File holding the mobile backend's bearer token (a mounted secret); or the token itself in NOTIFICATION_API_TOKEN. */
    NOTIFICATION_API_TOKEN_FILE: z.string().min(1).optional(),
    NOTIFICATION_API_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),

    /** nats-kv: the embedded store (JetStream KV, local run and CI); mongodb: the production store. */
    NOTIFIER_STORE: z.enum(['nats-kv', 'mongodb']).default('nats-kv'),
    MONGODB_URI: z.string().min(1).optional(),
    MONGODB_DATABASE: z.string().min(1).default('tollstream'),
    NOTIFIER_KV_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/).default('notifier-inbox'),
    /** Newest notifications kept per account by the KV store. */
    NOTIFIER_INBOX_MAX_PER_ACCOUNT: z.coerce.number().int().min(10).max(5_000).default(500),

    /** JSON file of webhook targets: [{name, url, secretFile|secretEnv, alertKinds, stations?, timeoutMs?}]; none when absent. */
    NOTIFIER_WEBHOOKS_FILE: z.string().min(1).optional(),
    NOTIFIER_WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(6),
    NOTIFIER_WEBHOOK_TIMEOUT: durationMsSchema.default(5_000),
    NOTIFIER_WEBHOOK_BACKOFF_BASE: durationMsSchema.default(500),
    NOTIFIER_WEBHOOK_BACKOFF_MAX: durationMsSchema.default(30_000),
    NOTIFIER_WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(1_024).default(16),

    /** Durable consumer names are <name>-inbox and <name>-webhooks; instances with the same name share the work. */
    NOTIFIER_CONSUMER_NAME: z.string().regex(/^[A-Za-z0-9_-]+$/).default('notifier'),
    NOTIFIER_ACK_WAIT: durationMsSchema.default(30_000),
    NOTIFIER_INBOX_CONCURRENCY: z.coerce.number().int().min(1).max(1_024).default(32),
    /** Live subscribers re-read the inbox this often (a safety net for a lost live message). */
    NOTIFIER_SUBSCRIPTION_POLL_INTERVAL: durationMsSchema.default(5_000),

    SHUTDOWN_GRACE_MS: durationMsSchema.default(20_000),
    LOG_LEVEL: z.string().default('info'),
  })
  .refine((config) => config.NOTIFICATION_API_TOKEN_FILE !== undefined || config.NOTIFICATION_API_TOKEN !== undefined, {
    message: 'set NOTIFICATION_API_TOKEN_FILE (or NOTIFICATION_API_TOKEN): the mobile backend credential',
    path: ['NOTIFICATION_API_TOKEN_FILE'],
  })
  .refine((config) => config.NOTIFIER_STORE !== 'mongodb' || config.MONGODB_URI !== undefined, {
    message: 'required when NOTIFIER_STORE=mongodb',
    path: ['MONGODB_URI'],
  });

export type NotifierConfig = z.infer<typeof notifierConfigSchema>;
