import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';

export interface BrokerConnectionOptions {
  /** One URL or several, comma-separated (a cluster). */
  url: string;
  /** NATS user credentials file (.creds), mounted from a secret. */
  credsFile?: string;
  /** Client name shown by the broker's monitoring. */
  name: string;
}

/** Connects a service to NATS; it reconnects forever, since every service depends on the broker. */
export function connectToBroker(options: BrokerConnectionOptions): Promise<NatsConnection> {
  return connect({
    servers: options.url.split(','),
    name: options.name,
    maxReconnectAttempts: -1,
    authenticator: options.credsFile ? credsAuthenticator(readFileSync(options.credsFile)) : undefined,
    // By default the client captures two stacks (Error objects) per request so that a timeout can show
    // the caller's stack; in billing that was about a third of its CPU (docs/billing.md). Errors keep
    // their message and code.
    noAsyncTraces: true,
  });
}
