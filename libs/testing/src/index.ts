/**
 * @tollstream/testing — the environment harness every integration suite uses.
 *
 * Each backend comes from, in order: an env var pointing at an existing server, a
 * testcontainers container when a Docker engine is reachable, else what this machine kind can run
 * locally (nats-server binary, embedded chDB) or an explicit, reported "unavailable" (MongoDB).
 * Everything started is registered for cleanup, also when the process exits abnormally.
 */
export { startNats, findNatsServerBinary } from './lib/nats';
export type { NatsHandle, NatsSource, StartNatsOptions } from './lib/nats';
export { createWarehouse } from './lib/warehouse';
export type { WarehouseHandle, WarehouseSource } from './lib/warehouse';
export {
  describeWithMongo,
  mongoAvailability,
  mongoUnavailableReasonSync,
  reportSkippedSuite,
  NO_MONGO_REASON,
} from './lib/mongo';
export type { MongoAvailability } from './lib/mongo';
export { dockerAvailable, dockerConfiguredSync } from './lib/docker';
export { freePort, isPortFree } from './lib/free-port';
export { startProcess } from './lib/process';
export { isProcessRunning } from './lib/process-state';
export type { ProcessHandle, StartProcessOptions } from './lib/process';
export { tempDir } from './lib/temp-dir';
export type { TempDirHandle } from './lib/temp-dir';
export { waitFor } from './lib/wait-for';
export type { WaitForOptions } from './lib/wait-for';
export { localMemoryBudget, repositoryRoot, serviceNodeArgs, startIngestor, startService, startWindower } from './lib/services';
export type { LocalMemoryBudget } from './lib/services';
export type { ServiceProcess, StartIngestorOptions, StartServiceOptions, StartWindowerOptions } from './lib/services';
export { aTollTransaction, readDeadLetters, readTransactionStream } from './lib/toll-data';
export { describeIf, itIf } from './lib/conditional';
export { seededRandom, sendThroughIngestor } from './lib/station-traffic';
export { createTestCertificateAuthority } from './lib/test-pki';
export type { TestCertificateAuthority, TestCertificateFiles } from './lib/test-pki';
export { NATS_FSYNC_VALUES, fsyncMechanism, natsServerVersion, parseNatsFsync } from './lib/nats-fsync';
export type { FsyncMechanism, NatsFsync, NatsServerVersion } from './lib/nats-fsync';
