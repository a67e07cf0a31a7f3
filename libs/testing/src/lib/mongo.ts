import { appendFileSync } from 'node:fs';
import { dockerAvailable, dockerConfiguredSync } from './docker';

export type MongoAvailability =
  | { available: true; uri: string; source: 'env' | 'container'; stop(): Promise<void> }
  | { available: false; reason: string };

export const NO_MONGO_REASON =
  'no MongoDB: MONGODB_URI is not set and no Docker engine is reachable (this machine kind cannot run a MongoDB server)';

const DEFAULT_MONGO_IMAGE = 'mongo:8';
/** Pulling and starting a MongoDB container (replica set init included) can take a while. */
const CONTAINER_START_TIMEOUT_MS = 180_000;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Adds `directConnection=true` unless the URI already says something about it. */
export function withDirectConnection(uri: string): string {
  if (/[?&]directConnection=/i.test(uri)) return uri;
  const separator = uri.includes('?') ? '&' : uri.endsWith('/') ? '?' : '/?';
  return `${uri}${separator}directConnection=true`;
}

async function pingMongo(uri: string): Promise<void> {
  const { MongoClient } = await import('mongodb');
  // Defaults only: timeouts given in the URI itself win.
  const client = new MongoClient(uri, {
    ...(/[?&]serverSelectionTimeoutMS=/i.test(uri) ? {} : { serverSelectionTimeoutMS: 5_000 }),
    ...(/[?&]connectTimeoutMS=/i.test(uri) ? {} : { connectTimeoutMS: 5_000 }),
  });
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close().catch(() => undefined);
  }
}

/**
 * Where a MongoDB for tests comes from: `MONGODB_URI` (checked with a ping; a set but unreachable
 * URI throws rather than being reported as "unavailable"), else a @testcontainers/mongodb
 * single-node replica set when a Docker engine is reachable, else unavailable with the reason.
 */
export async function mongoAvailability(): Promise<MongoAvailability> {
  const fromEnv = process.env['MONGODB_URI'];
  if (fromEnv) {
    try {
      await pingMongo(fromEnv);
    } catch (error) {
      throw new Error(`MONGODB_URI is set but MongoDB does not answer: ${errorMessage(error)}`, { cause: error });
    }
    return { available: true, uri: fromEnv, source: 'env', stop: () => Promise.resolve() };
  }
  if (!(await dockerAvailable())) {
    return {
      available: false,
      reason: dockerConfiguredSync()
        ? 'no MongoDB: MONGODB_URI is not set and the Docker engine configured here does not answer'
        : NO_MONGO_REASON,
    };
  }
  const { MongoDBContainer } = await import('@testcontainers/mongodb');
  const container = await new MongoDBContainer(process.env['MONGODB_IMAGE'] ?? DEFAULT_MONGO_IMAGE).start();
  let stopped = false;
  return {
    available: true,
    source: 'container',
    // The container runs a single-node replica set announced under its internal host name.
    uri: withDirectConnection(container.getConnectionString()),
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await container.stop();
    },
  };
}

/** Records why a suite is skipped: console.warn, and a line in $TOLLSTREAM_SKIP_REPORT when set. */
export function reportSkippedSuite(suiteName: string, reason: string): void {
  console.warn(`[skipped] ${suiteName}: ${reason}`);
  const reportFile = process.env['TOLLSTREAM_SKIP_REPORT'];
  if (!reportFile) return;
  try {
    appendFileSync(reportFile, `${suiteName}: ${reason}\n`);
  } catch (error) {
    console.warn(`could not append to TOLLSTREAM_SKIP_REPORT=${reportFile}: ${errorMessage(error)}`);
  }
}

/**
 * Synchronous decision for test registration: `undefined` when a MongoDB may be available
 * (MONGODB_URI set or a Docker engine configured), else the reason it cannot be.
 */
export function mongoUnavailableReasonSync(): string | undefined {
  if (process.env['MONGODB_URI']) return undefined;
  if (dockerConfiguredSync()) return undefined;
  return NO_MONGO_REASON;
}

/**
 * `describe` for suites that need a real MongoDB. When none can be had (decided synchronously from
 * MONGODB_URI and the Docker socket/config), the suite is registered with `describe.skip` and the
 * reason is printed and appended to $TOLLSTREAM_SKIP_REPORT. Otherwise a `beforeAll` (registered
 * before the body's own hooks) resolves the MongoDB (starting a container if needed) and an
 * `afterAll` stops it; `getUri()` is valid inside hooks and tests.
 */
export function describeWithMongo(name: string, body: (getUri: () => string) => void): void {
  let current: Extract<MongoAvailability, { available: true }> | undefined;
  const getUri = (): string => {
    if (!current) throw new Error(`describeWithMongo(${name}): MongoDB is not ready (use getUri() inside hooks or tests)`);
    return current.uri;
  };

  const unavailable = mongoUnavailableReasonSync();
  if (unavailable) {
    reportSkippedSuite(name, unavailable);
    describe.skip(name, () => body(getUri));
    return;
  }

  describe(name, () => {
    beforeAll(async () => {
      const availability = await mongoAvailability();
      if (!availability.available) {
        // Configured (socket/DOCKER_HOST present) but not working: a broken environment must fail, not skip.
        throw new Error(`describeWithMongo(${name}): ${availability.reason}`);
      }
      current = availability;
    }, CONTAINER_START_TIMEOUT_MS);
    afterAll(async () => {
      await current?.stop();
    }, 60_000);
    body(getUri);
  });
}
