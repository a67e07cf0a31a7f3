import { readFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import * as grpc from '@grpc/grpc-js';

/**
 * How a command-line tool or client reaches a service that may serve TLS (ADR 0017). All fields
 * optional: nothing set means plaintext; `tls` alone means TLS verified against the system's CAs.
 */
export interface ClientTlsOptions {
  /** Use TLS even without a CA file (the server's certificate is signed by a public CA). */
  tls?: boolean;
  /** PEM CA bundle that signed the server's certificate (a private CA). Implies TLS. */
  caFile?: string;
  /** PEM client certificate for mutual TLS. Implies TLS; needs keyFile. */
  certFile?: string;
  /** PEM private key of certFile. */
  keyFile?: string;
  /** Name the server certificate must carry, when the address is an IP or a port-forward (e.g. ingestor.tolls.example). */
  serverName?: string;
}

/** A client TLS setting that cannot be used; the message names the option and the file. */
export class ClientTlsError extends Error {
  override readonly name = 'ClientTlsError';
}

interface ClientPem {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export function usesTls(options: ClientTlsOptions): boolean {
  return Boolean(options.tls || options.caFile || options.certFile || options.keyFile);
}

function readClientPem(options: ClientTlsOptions): ClientPem {
  if (Boolean(options.certFile) !== Boolean(options.keyFile)) {
    throw new ClientTlsError('a client certificate needs both --tls-cert-file and --tls-key-file');
  }
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ClientTlsError(`cannot read the ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return { ca: read(options.caFile, 'CA file'), cert: read(options.certFile, 'client certificate'), key: read(options.keyFile, 'client key') };
}

/** gRPC channel credentials (and the channel options a server-name override needs) for these settings. */
export function grpcClientCredentials(options: ClientTlsOptions): { credentials: grpc.ChannelCredentials; channelOptions: grpc.ChannelOptions } {
  if (!usesTls(options)) return { credentials: grpc.credentials.createInsecure(), channelOptions: {} };
  const pem = readClientPem(options);
  return {
    credentials: grpc.credentials.createSsl(pem.ca ?? null, pem.key ?? null, pem.cert ?? null),
    channelOptions: options.serverName ? { 'grpc.ssl_target_name_override': options.serverName, 'grpc.default_authority': options.serverName } : {},
  };
}

/** Options for node's https client (ops port over TLS) for these settings. */
export function httpsClientOptions(options: ClientTlsOptions): Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'servername'> {
  const pem = readClientPem(options);
  return { ca: pem.ca, cert: pem.cert, key: pem.key, servername: options.serverName };
}

export interface HttpsRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** GET over https with a private CA or a client certificate (see httpsRequestText). */
export function httpsGetText(url: string, options: ClientTlsOptions, timeoutMs: number, maxBytes = 16 * 1024 * 1024): Promise<{ status: number; text: string }> {
  return httpsRequestText(url, {}, options, timeoutMs, maxBytes);
}

/**
 * One request over https with a private CA, a client certificate or a server-name override (fetch can
 * take none of them), bounded in time and answer size. Resolves with the status and the body text.
 */
export function httpsRequestText(
  url: string,
  request: HttpsRequest,
  options: ClientTlsOptions,
  timeoutMs: number,
  maxBytes = 16 * 1024 * 1024,
): Promise<{ status: number; text: string }> {
  const tlsOptions = httpsClientOptions(options);
  return new Promise((resolve, reject) => {
    // agent: false: a connection of its own, so a rotated server certificate is seen (no kept-alive or resumed session).
    const outgoing = httpsRequest(url, { method: request.method ?? 'GET', headers: request.headers, ...tlsOptions, agent: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          outgoing.destroy(new Error(`${url}: answer larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    outgoing.on('error', reject);
    outgoing.end(request.body);
  });
}
