import { brokerConfigShape } from '@tollstream/messaging';
import { durationMsSchema, grpcTlsConfigShape, portSchema } from '@tollstream/service-kit';
import { z } from 'zod';

/** Every environment variable the ingestor reads. The Helm chart sets exactly these. */
export const ingestorConfigSchema = z.object({
  ...brokerConfigShape,
  /** In-process TLS (ADR 0017); unset: plaintext. */
  ...grpcTlsConfigShape,
  INGEST_GRPC_HOST: z.string().default('0.0.0.0'),
  INGEST_GRPC_PORT: portSchema.default(50051),
  INGEST_HTTP_PORT: portSchema.default(9464),
  /** JSON file binding station bearer tokens to station ids (see docs/ingest.md). */
  INGEST_STATION_CREDENTIALS_FILE: z.string().min(1),
  INGEST_MAX_AMOUNT_MINOR: z.coerce.number().int().positive().default(1_000_000),
  INGEST_MAX_CLOCK_SKEW_MS: durationMsSchema.default(5 * 60_000),
  INGEST_ACCEPTANCE_HORIZON_MS: durationMsSchema.default(72 * 3600_000),
  INGEST_MAX_RECORDS_PER_BATCH: z.coerce.number().int().min(1).max(10_000).default(5_000),
  INGEST_MAX_REQUEST_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
  INGEST_MAX_BATCHES_IN_FLIGHT_PER_STREAM: z.coerce.number().int().min(1).max(1024).default(16),
  INGEST_APPEND_DEADLINE_MS: durationMsSchema.default(10_000),
  SHUTDOWN_GRACE_MS: durationMsSchema.default(20_000),
  LOG_LEVEL: z.string().default('info'),
});

export type IngestorConfig = z.infer<typeof ingestorConfigSchema>;
