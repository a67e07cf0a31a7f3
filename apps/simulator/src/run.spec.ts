// The send loop against fake ingest transports: stopping on a signal, retrying UNAVAILABLE answers.
import { RejectionCode, TransactionStatus, type TransactionResult } from '@tollstream/contracts';
import type { IngestTransport } from '@tollstream/station-sender';
import { runSimulation, type RunSettings, type RunSummary } from './run';

const settings = (overrides: Partial<RunSettings>): RunSettings => ({
  seed: 'run', stations: 3, accounts: 30,
  ingestAddress: '127.0.0.1:1', token: 'station-token-0123456789',
  rate: 30, pattern: 'flat', durationS: 0, backfillMs: 0, faults: '',
  batchSize: 100, concurrency: 2, progressIntervalMs: 60_000,
  signal: new AbortController().signal, writeLine: () => undefined,
  ...overrides,
});

const answer = (status: TransactionStatus, rejectionCode = RejectionCode.REJECTION_CODE_UNSPECIFIED) => (transactionId: string): TransactionResult => ({ transactionId, status, rejectionCode, field: '', reason: '' });

it('stops cleanly when signalled (duration 0), after the batches in flight, and prints the summary', async () => {
  const controller = new AbortController();
  const lines: string[] = [];
  let submitted = 0;
  const transport: IngestTransport = {
    submitTransactions: async (request) => {
      submitted += request.transactions.length;
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { results: request.transactions.map((t) => answer(TransactionStatus.TRANSACTION_STATUS_ACCEPTED)(t.transactionId)) };
    },
    close: () => undefined,
  };
  setTimeout(() => controller.abort(), 2_500);
  const summary = await runSimulation(settings({ signal: controller.signal, writeLine: (line) => lines.push(line) }), () => transport);
  expect(summary.event).toBe('summary');
  expect(summary.accepted).toBe(submitted);
  expect(summary.accepted).toBe(summary.generated.validRecords);
  expect(summary.accepted).toBeGreaterThan(20);
  expect(summary.accepted).toBeLessThan(150);
  expect((JSON.parse(lines[lines.length - 1] as string) as RunSummary).accepted).toBe(summary.accepted);
});

it('resubmits records answered UNAVAILABLE until they are accepted', async () => {
  const attempts = new Map<string, number>();
  const transport: IngestTransport = {
    submitTransactions: async (request) => ({
      results: request.transactions.map((t) => {
        const attempt = (attempts.get(t.transactionId) ?? 0) + 1;
        attempts.set(t.transactionId, attempt);
        // Every third record is refused once, as an ingestor whose broker is briefly unavailable.
        return attempt === 1 && attempts.size % 3 === 0
          ? answer(TransactionStatus.TRANSACTION_STATUS_REJECTED, RejectionCode.REJECTION_CODE_UNAVAILABLE)(t.transactionId)
          : answer(TransactionStatus.TRANSACTION_STATUS_ACCEPTED)(t.transactionId);
      }),
    }),
    close: () => undefined,
  };
  const summary = await runSimulation(settings({ backfillMs: 60_000, maxRecords: 300 }), () => transport);
  expect(summary.accepted).toBe(300);
  expect(summary.retriedRecords).toBe(100);
  expect(summary.submittedRecords).toBe(400);
  expect(summary.rejected).toEqual({});
});
