import * as grpc from '@grpc/grpc-js';
import { IngestServiceClient, RejectionCode, TransactionStatus, type SubmitTransactionsResponse, type TollTransaction } from '@tollstream/contracts';

/** Deterministic pseudo-random numbers (mulberry32): a failing seed can be replayed. */
export { seededRandom } from '@tollstream/simulator';

/** Sends batches through the ingestor's gRPC API like stations do, optionally at a limited rate. */
export async function sendThroughIngestor(
  address: string,
  token: string,
  sends: TollTransaction[][],
  options: { recordsPerSecond?: number; concurrency?: number; onProgress?: (sentBatches: number) => void } = {},
): Promise<{ accepted: number; duplicate: number }> {
  const client = new IngestServiceClient(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  const submit = (transactions: TollTransaction[]) =>
    new Promise<SubmitTransactionsResponse>((resolve, reject) =>
      client.submitTransactions({ transactions }, metadata, { deadline: Date.now() + 30_000 }, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  let accepted = 0;
  let duplicate = 0;
  let nextBatch = 0;
  let sentRecords = 0;
  const started = Date.now();
  const worker = async () => {
    while (nextBatch < sends.length) {
      const batch = sends[nextBatch++];
      if (options.recordsPerSecond) {
        const due = started + (sentRecords / options.recordsPerSecond) * 1000;
        if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      }
      sentRecords += batch.length;
      let pending = batch;
      // Records answered "unavailable" are resent, as stations do.
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 20) throw new Error('the ingestor kept answering unavailable');
        const response = await submit(pending);
        const retry: TollTransaction[] = [];
        response.results.forEach((result, index) => {
          if (result.status === TransactionStatus.TRANSACTION_STATUS_ACCEPTED) accepted++;
          else if (result.status === TransactionStatus.TRANSACTION_STATUS_DUPLICATE) duplicate++;
          else if (result.status === TransactionStatus.TRANSACTION_STATUS_REJECTED && result.rejectionCode !== RejectionCode.REJECTION_CODE_UNAVAILABLE) {
            throw new Error(`record ${pending[index].transactionId} rejected: ${result.reason}`);
          } else retry.push(pending[index]); // REJECTED with UNAVAILABLE: the ingestor asks to send it again
        });
        pending = retry;
        if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      options.onProgress?.(nextBatch);
    }
  };
  try {
    // One batch in flight by default: concurrent batches would reorder event time by more than the generated disorder.
    await Promise.all(Array.from({ length: options.concurrency ?? 1 }, worker));
  } finally {
    client.close();
  }
  return { accepted, duplicate };
}

