import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { booleanFromEnv, durationMsSchema } from '@tollstream/service-kit';
import { z } from 'zod';
import { connectToBroker } from './connect';
import { declareTopology, provisionTopology, type Topology } from './topology';

/**
 * The environment variables every service reads for the broker and the shared topology. Every
 * service provisions the same streams at start-up, so these must have the same values everywhere
 * (the Helm chart sets them once for all services).
 */
export const brokerConfigShape = {
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  /** File with a NATS user credentials (.creds), mounted from a secret; optional locally. */
  NATS_CREDS_FILE: z.string().optional(),
  TOLL_TX_PARTITIONS: z.coerce.number().int().min(1).max(1024).default(8),
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  TOLL_TX_RETENTION_MS: durationMsSchema.default(7 * 24 * 3600_000),
  /** How long TOLL_DLQ keeps dead letters for inspection and re-drive (docs/operations.md). */
  TOLL_DLQ_RETENTION_MS: durationMsSchema.default(30 * 24 * 3600_000),
  PROVISION_TOPOLOGY: booleanFromEnv.default(true),
};

export type BrokerConfig = z.infer<z.ZodObject<typeof brokerConfigShape>>;

export interface ServiceBroker {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  topology: Topology;
}

/** Connects a service to NATS and, unless PROVISION_TOPOLOGY=false, provisions the shared topology. */
export async function connectServiceToBroker(config: BrokerConfig, clientName: string): Promise<ServiceBroker> {
  const nc = await connectToBroker({ url: config.NATS_URL, credsFile: config.NATS_CREDS_FILE, name: clientName });
  const jsm = await jetstreamManager(nc);
  const topology = declareTopology({
    transactionPartitions: config.TOLL_TX_PARTITIONS,
    replicas: config.NATS_STREAM_REPLICAS,
    transactionRetentionMs: config.TOLL_TX_RETENTION_MS,
    deadLetterRetentionMs: config.TOLL_DLQ_RETENTION_MS,
  });
  if (config.PROVISION_TOPOLOGY) await provisionTopology(jsm, topology);
  return { nc, js: jetstream(nc), jsm, topology };
}
