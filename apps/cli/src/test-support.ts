// Helpers for this app's tests only.
import * as grpc from '@grpc/grpc-js';
import {
  IngestServiceService,
  RejectionCode,
  TransactionStatus,
  type IngestServiceServer,
  type TollTransaction,
  type TransactionResult,
} from '@tollstream/contracts';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { CliIo } from './program';

export function memoryStream(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

export function memoryIo(env: NodeJS.ProcessEnv = {}): CliIo & { out: () => string; err: () => string } {
  const stdout = memoryStream();
  const stderr = memoryStream();
  return {
    stdout: stdout.stream,
    stderr: stderr.stream,
    env,
    stderrIsTTY: false,
    handleSignals: false,
    out: stdout.text,
    err: stderr.text,
  };
}

/**
 * A protocol double of the ingestor on a real grpc-js server: bearer token check, ACCEPTED the
 * first time a (station, transaction id) is seen and DUPLICATE after, INVALID_FIELD for currency
 * ZZZ, and UNAVAILABLE for the very first call (to exercise retries).
 */
export async function startIngestDouble(
  token: string,
  callDelayMs = 0,
): Promise<{ address: string; stored: Set<string>; calls: () => number; stop: () => Promise<void> }> {
  const stored = new Set<string>();
  let calls = 0;
  const fail = (code: grpc.status, details: string): grpc.ServiceError =>
    Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
  const implementation: IngestServiceServer = {
    submitTransactions: (call, callback) => {
      if (call.metadata.get('authorization')[0] !== `Bearer ${token}`) {
        callback(fail(grpc.status.UNAUTHENTICATED, 'a valid station credential is required'));
        return;
      }
      calls += 1;
      if (calls === 1) {
        callback(fail(grpc.status.UNAVAILABLE, 'ingestor warming up'));
        return;
      }
      const answer = () => callback(null, { results: resultsFor(call.request.transactions) });
      if (callDelayMs > 0) setTimeout(answer, callDelayMs);
      else answer();
    },
    streamTransactions: (call) => call.emit('error', fail(grpc.status.UNIMPLEMENTED, 'not in this double')),
  };
  const resultsFor = (transactions: TollTransaction[]): TransactionResult[] =>
    transactions.map((transaction): TransactionResult => {
        const base = { transactionId: transaction.transactionId, rejectionCode: RejectionCode.REJECTION_CODE_UNSPECIFIED, field: '', reason: '' };
        if (transaction.currency === 'ZZZ') {
          return {
            ...base,
            status: TransactionStatus.TRANSACTION_STATUS_REJECTED,
            rejectionCode: RejectionCode.REJECTION_CODE_INVALID_FIELD,
            field: 'currency',
            reason: 'currency: "ZZZ" is not an accepted ISO 4217 code',
          };
        }
        const key = `${transaction.stationId}/${transaction.transactionId}`;
        const status = stored.has(key) ? TransactionStatus.TRANSACTION_STATUS_DUPLICATE : TransactionStatus.TRANSACTION_STATUS_ACCEPTED;
        stored.add(key);
        return { ...base, status };
      });
  const server = new grpc.Server();
  server.addService(IngestServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    address: `127.0.0.1:${port}`,
    stored,
    calls: () => calls,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * `node --import tsx apps/cli/src/main.ts ...` as its own process (one node process, so that a
 * signal reaches exactly the CLI); `onStart` gets its pid.
 */
export function runCliProcess(args: string[], env: NodeJS.ProcessEnv, onStart?: (pid: number) => void): Promise<CliRun> {
  const repoRoot = resolve(__dirname, '../../..');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/cli/src/main.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
    if (child.pid !== undefined) onStart?.(child.pid);
  });
}
