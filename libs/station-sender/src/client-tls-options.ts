import { Option, type Command } from 'commander';
import type { ClientTlsOptions } from '@tollstream/service-kit';

/**
 * The client TLS options of the command-line tools (tollstream, the simulator), the same everywhere
 * (ADR 0017): flags with an environment fallback, so a pod or a script can set them once.
 */
export function addClientTlsOptions(command: Command, env: NodeJS.ProcessEnv): Command {
  return command
    .addOption(new Option('--tls', 'connect with TLS, verifying the server against the system CAs (env TLS_ENABLED=true); implied by the options below').default(env['TLS_ENABLED'] === 'true' || env['TLS_ENABLED'] === '1' || undefined))
    .addOption(new Option('--tls-ca-file <file>', 'PEM CA that signed the servers\' certificates, for a private CA (env TLS_CA_FILE)').default(env['TLS_CA_FILE'] || undefined))
    .addOption(new Option('--tls-cert-file <file>', 'PEM client certificate, when the server requires mutual TLS (env TLS_CLIENT_CERT_FILE)').default(env['TLS_CLIENT_CERT_FILE'] || undefined))
    .addOption(new Option('--tls-key-file <file>', 'PEM private key of --tls-cert-file (env TLS_CLIENT_KEY_FILE)').default(env['TLS_CLIENT_KEY_FILE'] || undefined))
    .addOption(new Option('--tls-server-name <name>', 'name to expect in the server certificate when the address differs, e.g. through a port-forward (env TLS_SERVER_NAME)').default(env['TLS_SERVER_NAME'] || undefined));
}

/** The ClientTlsOptions of a command's parsed options (see addClientTlsOptions). */
export function clientTlsFromOptions(options: { tls?: boolean; tlsCaFile?: string; tlsCertFile?: string; tlsKeyFile?: string; tlsServerName?: string }): ClientTlsOptions {
  return { tls: options.tls, caFile: options.tlsCaFile, certFile: options.tlsCertFile, keyFile: options.tlsKeyFile, serverName: options.tlsServerName };
}
