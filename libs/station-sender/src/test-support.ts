// Helpers for this library's tests only (not exported from index.ts).
import * as grpc from '@grpc/grpc-js';
import {
  IngestServiceService,
  RejectionCode,
  TransactionStatus,
  type IngestServiceServer,
  type SubmitTransactionsRequest,
  type SubmitTransactionsResponse,
  type TollTransaction,
  type TransactionResult,
} from '@tollstream/contracts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IngestTransport } from './ingest-transport';

export async function makeTempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'station-sender-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function writeLines(path: string, lines: readonly string[]): Promise<void> {
  await writeFile(path, `${lines.join('\n')}\n`);
}

/** A valid NDJSON record; `overrides` replace or (with undefined) remove fields. */
export function recordJson(index: number, overrides: Record<string, unknown> = {}): string {
  const record: Record<string, unknown> = {
    transaction_id: `tx-${String(index).padStart(6, '0')}`,
    station_id: 'st-001',
    lane_id: 'L01',
    tag_id: `TAG${index}`,
    plate: 'ABC 123',
    account_id: `acct-${index % 7}`,
    vehicle_class: 'car',
    amount_minor: 275,
    currency: 'USD',
    occurred_at: '2024-05-01T08:30:00Z',
    ...overrides,
  };
  for (const [key, value] of Object.entries(overrides)) if (value === undefined) delete record[key];
  return JSON.stringify(record);
}

export const grpcError = (code: grpc.status, details: string): grpc.ServiceError =>
  Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata: new grpc.Metadata() });

/**
 * An ingestor double: stores transaction ids in memory (ACCEPTED the first time, DUPLICATE
 * after), and lets a test script failures per call.
 */
export class FakeIngest {
  readonly stored = new Set<string>();
  readonly calls: TollTransaction[][] = [];
  /** Per-call hook, by call index (0-based): throw a ServiceError or return results to override. */
  script: (call: number, transactions: TollTransaction[]) => TransactionResult[] | undefined | void = () => undefined;
  /** Decides per record when the script does not: reject some records. */
  rejectWhen: (transaction: TollTransaction) => Omit<TransactionResult, 'transactionId' | 'status'> | undefined = () =>
    undefined;

  submit(transactions: TollTransaction[]): TransactionResult[] {
    const call = this.calls.length;
    this.calls.push(transactions);
    const scripted = this.script(call, transactions);
    if (scripted) return scripted;
    return transactions.map((transaction) => this.resultFor(transaction));
  }

  resultFor(transaction: TollTransaction): TransactionResult {
    const rejection = this.rejectWhen(transaction);
    if (rejection) {
      return { transactionId: transaction.transactionId, status: TransactionStatus.TRANSACTION_STATUS_REJECTED, ...rejection };
    }
    const key = `${transaction.stationId}/${transaction.transactionId}`;
    const status = this.stored.has(key)
      ? TransactionStatus.TRANSACTION_STATUS_DUPLICATE
      : TransactionStatus.TRANSACTION_STATUS_ACCEPTED;
    this.stored.add(key);
    return {
      transactionId: transaction.transactionId,
      status,
      rejectionCode: RejectionCode.REJECTION_CODE_UNSPECIFIED,
      field: '',
      reason: '',
    };
  }

  /** An in-process transport backed by this double (no network). */
  transport(delayMs: (call: number) => number = () => 0): IngestTransport & { maxConcurrent: number } {
    let active = 0;
    const transport = {
      maxConcurrent: 0,
      submitTransactions: async (request: SubmitTransactionsRequest): Promise<SubmitTransactionsResponse> => {
        const call = this.calls.length;
        active += 1;
        transport.maxConcurrent = Math.max(transport.maxConcurrent, active);
        try {
          await new Promise((resolve) => setTimeout(resolve, delayMs(call)));
          return { results: this.submit(request.transactions) };
        } finally {
          active -= 1;
        }
      },
      close: () => undefined,
    };
    return transport;
  }
}

/** A real grpc-js server implementing IngestService over a FakeIngest, on a free local port. */
export async function startFakeIngestServer(
  ingest: FakeIngest,
  expectedToken: string,
): Promise<{ address: string; stop: () => Promise<void> }> {
  const server = new grpc.Server();
  const implementation: IngestServiceServer = {
    submitTransactions: (call, callback) => {
      if (call.metadata.get('authorization')[0] !== `Bearer ${expectedToken}`) {
        callback(grpcError(grpc.status.UNAUTHENTICATED, 'a valid station credential is required'));
        return;
      }
      try {
        callback(null, { results: ingest.submit(call.request.transactions) });
      } catch (error) {
        callback(error as grpc.ServiceError);
      }
    },
    streamTransactions: (call) => {
      call.emit('error', grpcError(grpc.status.UNIMPLEMENTED, 'not in this double'));
    },
  };
  server.addService(IngestServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
      error ? reject(error) : resolve(boundPort),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
