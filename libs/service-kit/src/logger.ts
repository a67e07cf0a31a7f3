import pino, { type DestinationStream, type Logger } from 'pino';
import { ConfigError } from './config';

export type { Logger } from 'pino';

export interface LoggerOptions {
  service: string;
  /** Falls back to LOG_LEVEL, then "info". */
  level?: string;
}

// Credentials can reach a log line through request metadata or a config object; pino removes them before writing.
export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'metadata.authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'secret',
  '*.secret',
];

/**
 * JSON logs with {service} on every line and ISO timestamps.
 * `destination` defaults to stdout; tests pass a stream to read what was written.
 */
export function createLogger(options: LoggerOptions, destination?: DestinationStream): Logger {
  const level = options.level ?? process.env['LOG_LEVEL'] ?? 'info';
  if (!(level in pino.levels.values) && level !== 'silent') {
    const known = [...Object.keys(pino.levels.values), 'silent'].join(', ');
    throw new ConfigError(`Invalid configuration: LOG_LEVEL: expected one of ${known}, got ${JSON.stringify(level)}`);
  }
  const settings: pino.LoggerOptions = {
    level,
    base: { service: options.service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  // Without a destination pino writes to stdout and flushes pending lines when the process exits.
  return destination ? pino(settings, destination) : pino(settings);
}
