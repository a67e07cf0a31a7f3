import type { RetryNotice, SendProgress } from '@tollstream/station-sender';
import { Presets, SingleBar } from 'cli-progress';

export interface ProgressReporter {
  update(progress: SendProgress): void;
  retry(notice: RetryNotice): void;
  note(message: string): void;
  stop(): void;
}

const percent = (progress: SendProgress): number =>
  progress.bytesTotal === 0 ? 100 : Math.floor((progress.bytesAcknowledged / progress.bytesTotal) * 100);

export function describeProgress(progress: SendProgress): string {
  const { counts } = progress;
  return (
    `${percent(progress)}% | ${progress.linesAcknowledged} lines acknowledged | accepted ${counts.accepted}, ` +
    `duplicate ${counts.duplicate}, rejected ${counts.rejected}, unparseable ${counts.unparseable}` +
    (counts.retriedCalls + counts.resentRecords > 0 ? `, retries ${counts.retriedCalls + counts.resentRecords}` : '')
  );
}

export function describeRetry(notice: RetryNotice): string {
  return (
    `retrying lines ${notice.firstLine}-${notice.lastLine} (attempt ${notice.attempt} of ${notice.maxAttempts}) ` +
    `in ${(notice.delayMs / 1000).toFixed(1)} s${notice.askedDelayMs === undefined ? '' : ' (as the ingestor asked)'}: ${notice.reason}`
  );
}

/** --no-progress: only notes (such as "stopping on SIGINT") are written. */
export function silentReporter(write: (text: string) => void): ProgressReporter {
  return {
    update: () => undefined,
    retry: () => undefined,
    note: (message) => write(`${message}\n`),
    stop: () => undefined,
  };
}

/** For logs and pipes: one plain line every `intervalMs`, retries as they happen. */
export function plainReporter(
  write: (text: string) => void,
  intervalMs = 5_000,
  clock: () => number = Date.now,
): ProgressReporter {
  let lastAt = clock();
  let latest: SendProgress | undefined;
  let lastPrinted = '';
  const print = (progress: SendProgress) => {
    const line = describeProgress(progress);
    if (line === lastPrinted) return;
    lastPrinted = line;
    write(`progress: ${line}\n`);
  };
  return {
    update(progress) {
      latest = progress;
      if (clock() - lastAt >= intervalMs) {
        lastAt = clock();
        print(progress);
      }
    },
    retry: (notice) => write(`${describeRetry(notice)}\n`),
    note: (message) => write(`${message}\n`),
    stop() {
      if (latest) print(latest);
    },
  };
}

/** For a terminal: a bar over the bytes of the file acknowledged so far. */
export function barReporter(stream: NodeJS.WritableStream): ProgressReporter {
  const bar = new SingleBar(
    {
      stream,
      format:
        'sending [{bar}] {percentage}% | {lines} lines | accepted {accepted} duplicate {duplicate} ' +
        'rejected {rejected} unparseable {unparseable}{retries} | ETA {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
      fps: 10,
    },
    Presets.shades_classic,
  );
  let started = false;
  let lastRetry = '';
  let lastRetryAt = 0;
  const payload = (progress: SendProgress) => ({
    lines: progress.linesAcknowledged,
    accepted: progress.counts.accepted,
    duplicate: progress.counts.duplicate,
    rejected: progress.counts.rejected,
    unparseable: progress.counts.unparseable,
    retries: Date.now() - lastRetryAt < 10_000 ? lastRetry : '',
  });
  return {
    update(progress) {
      if (!started) {
        bar.start(Math.max(progress.bytesTotal, 1), progress.bytesAcknowledged, payload(progress));
        started = true;
      } else {
        bar.setTotal(Math.max(progress.bytesTotal, 1));
        bar.update(progress.bytesAcknowledged, payload(progress));
      }
    },
    retry(notice) {
      lastRetryAt = Date.now();
      lastRetry = ` | retrying lines ${notice.firstLine}-${notice.lastLine} (${notice.attempt}/${notice.maxAttempts})`;
      if (started) bar.update({ retries: lastRetry });
    },
    note(message) {
      if (started) {
        bar.stop();
        started = false;
      }
      stream.write(`${message}\n`);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
