import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerConfiguredSync } from './docker';
import { describeWithMongo, mongoAvailability, mongoUnavailableReasonSync, NO_MONGO_REASON, withDirectConnection } from './mongo';
import { itIf } from './conditional';

const noMongoHere = !process.env['MONGODB_URI'] && !dockerConfiguredSync();

// --- registration-time behaviour of describeWithMongo (runs while this file is collected) ---
const reportDir = mkdtempSync(join(tmpdir(), 'tollstream-skip-report-'));
// Under `npm test` the reason goes to the run's real skip report (so CI prints it); alone, to a temp file.
const previousReport = process.env['TOLLSTREAM_SKIP_REPORT'];
const reportFile = previousReport ?? join(reportDir, 'skipped.txt');
process.env['TOLLSTREAM_SKIP_REPORT'] = reportFile;
const warnings: string[] = [];
const warnSpy = jest.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => {
  warnings.push(args.map(String).join(' '));
});
let bodyRegistered = false;
let testRan = false;
try {
  describeWithMongo('harness self-test: a suite that needs MongoDB', (getUri) => {
    bodyRegistered = true;
    it('talks to MongoDB', () => {
      testRan = true;
      expect(getUri()).toMatch(/^mongodb(\+srv)?:\/\//);
    });
  });
} finally {
  warnSpy.mockRestore();
  if (previousReport === undefined) delete process.env['TOLLSTREAM_SKIP_REPORT'];
  else process.env['TOLLSTREAM_SKIP_REPORT'] = previousReport;
}

afterAll(() => rmSync(reportDir, { recursive: true, force: true }));

describe('describeWithMongo', () => {
  it('registers the body either way', () => {
    expect(bodyRegistered).toBe(true);
  });

  itIf(noMongoHere, 'without MongoDB: skips, warns with the reason and appends it to TOLLSTREAM_SKIP_REPORT', 'MongoDB is available here', () => {
    expect(testRan).toBe(false);
    expect(warnings).toEqual([`[skipped] harness self-test: a suite that needs MongoDB: ${NO_MONGO_REASON}`]);
    expect(readFileSync(reportFile, 'utf8')).toContain(`harness self-test: a suite that needs MongoDB: ${NO_MONGO_REASON}\n`);
  });
});

describe('mongoAvailability', () => {
  itIf(noMongoHere, 'reports MongoDB as unavailable on this machine kind, with the reason', 'MongoDB is available here', async () => {
    expect(mongoUnavailableReasonSync()).toBe(NO_MONGO_REASON);
    await expect(mongoAvailability()).resolves.toEqual({ available: false, reason: NO_MONGO_REASON });
    expect(NO_MONGO_REASON).toBe(
      'no MongoDB: MONGODB_URI is not set and no Docker engine is reachable (this machine kind cannot run a MongoDB server)',
    );
  });

  it('fails loudly (instead of skipping) when MONGODB_URI is set but nothing answers', async () => {
    const previous = process.env['MONGODB_URI'];
    process.env['MONGODB_URI'] = 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300';
    try {
      expect(mongoUnavailableReasonSync()).toBeUndefined();
      await expect(mongoAvailability()).rejects.toThrow(/MONGODB_URI is set but MongoDB does not answer/);
    } finally {
      if (previous === undefined) delete process.env['MONGODB_URI'];
      else process.env['MONGODB_URI'] = previous;
    }
  }, 15_000);
});

describe('withDirectConnection', () => {
  it('adds directConnection=true once', () => {
    expect(withDirectConnection('mongodb://localhost:32768')).toBe('mongodb://localhost:32768/?directConnection=true');
    expect(withDirectConnection('mongodb://u:p@localhost:1?authSource=admin')).toBe(
      'mongodb://u:p@localhost:1?authSource=admin&directConnection=true',
    );
    expect(withDirectConnection('mongodb://h/?directConnection=false')).toBe('mongodb://h/?directConnection=false');
  });
});
