import type { SendSummary } from './send-file';

/** The input file cannot be used at all (missing, unreadable, unknown format, unusable CSV header). */
export class InputFileError extends Error {
  override readonly name = 'InputFileError';
}

/** The checkpoint cannot be used: unreadable, for another file, or the input changed since. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/**
 * The run cannot go on: the ingestor refused the credentials or the request, or kept failing
 * after every retry. Lines acknowledged before this are kept in the checkpoint, so a rerun
 * resumes where this one stopped.
 */
export class SendError extends Error {
  override readonly name = 'SendError';
  /** What the run did before it stopped; set by sendFile. */
  summary?: SendSummary;
  constructor(
    message: string,
    /** gRPC status name when the ingestor answered with one (e.g. UNAUTHENTICATED). */
    readonly grpcCode?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
