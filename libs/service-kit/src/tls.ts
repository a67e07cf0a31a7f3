import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { experimental } from '@grpc/grpc-js';
import { z } from 'zod';
import { booleanFromEnv, ConfigError, durationMsSchema } from './config';
import type { Logger } from './logger';

type CertificateProvider = experimental.CertificateProvider;
type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaListener = experimental.CaCertificateUpdateListener;

const MIN_RELOAD_MS = 1_000;
const MAX_RELOAD_MS = 24 * 3_600_000;
/** PEM files larger than this are refused: a certificate chain is a few KiB. */
const MAX_PEM_BYTES = 1024 * 1024;

/**
 * The variables of in-process TLS every service reads (ADR 0017). Unset: plaintext, as locally.
 * Certificate and key are PEM files (a mounted Kubernetes TLS Secret), re-read every TLS_RELOAD_INTERVAL.
 */
export const tlsConfigShape = {
  /** PEM certificate chain of the service (its own certificate first). With TLS_KEY_FILE: serve TLS. */
  TLS_CERT_FILE: z.string().optional(),
  /** PEM private key of TLS_CERT_FILE. */
  TLS_KEY_FILE: z.string().optional(),
  /** How often the files are checked for a new certificate (rotation without a restart). */
  TLS_RELOAD_INTERVAL: durationMsSchema
    .refine((ms) => ms >= MIN_RELOAD_MS && ms <= MAX_RELOAD_MS, { error: 'expected a duration from 1s to 24h' })
    .default(60_000),
  /** Serve the ops port (/metrics, /healthz, /readyz) over TLS too when a certificate is configured. */
  TLS_OPS_HTTP: booleanFromEnv.default(true),
};

/** tlsConfigShape plus mutual TLS, for services with a gRPC API. */
export const grpcTlsConfigShape = {
  ...tlsConfigShape,
  /** PEM CA bundle: gRPC clients must present a certificate signed by it (mTLS). Unset: no client certificate asked. */
  TLS_CLIENT_CA_FILE: z.string().optional(),
};

export interface TlsConfig {
  TLS_CERT_FILE?: string;
  TLS_KEY_FILE?: string;
  TLS_CLIENT_CA_FILE?: string;
  TLS_RELOAD_INTERVAL: number;
  TLS_OPS_HTTP: boolean;
}

/** What a service's servers need to speak TLS: the reloading certificate files and where to use them. */
export interface ServiceTls {
  certificates: ReloadingCertificates;
  /** Whether the ops HTTP port uses TLS too (TLS_OPS_HTTP). */
  opsHttp: boolean;
}

/**
 * The service's TLS settings from its validated config; undefined when no certificate is configured.
 * Reads and checks the files now, so a wrong path or a key that does not match the certificate stops
 * the start with a ConfigError naming the variable.
 */
export function loadServiceTls(config: TlsConfig, logger: Logger): ServiceTls | undefined {
  const { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_CLIENT_CA_FILE: clientCaFile } = config;
  if (!certFile && !keyFile) {
    if (clientCaFile) throw new ConfigError('TLS_CLIENT_CA_FILE: mutual TLS needs the server certificate too (TLS_CERT_FILE and TLS_KEY_FILE)');
    return undefined;
  }
  if (!certFile) throw new ConfigError('TLS_CERT_FILE: required when TLS_KEY_FILE is set');
  if (!keyFile) throw new ConfigError('TLS_KEY_FILE: required when TLS_CERT_FILE is set');
  const certificates = new ReloadingCertificates({ certFile, keyFile, clientCaFile, reloadIntervalMs: config.TLS_RELOAD_INTERVAL, logger });
  return { certificates, opsHttp: config.TLS_OPS_HTTP };
}

export interface ReloadingCertificatesOptions {
  certFile: string;
  keyFile: string;
  /** CA bundle that client certificates must chain to (mTLS); undefined: clients are not asked for one. */
  clientCaFile?: string;
  reloadIntervalMs: number;
  logger: Logger;
}

interface PemSet {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

/**
 * A certificate, its key and an optional client CA read from files and re-read every reloadIntervalMs
 * while someone listens. A new set is used only when it is valid as a whole (the key matches the
 * certificate, the PEM parses): files caught half-replaced keep the last good set, with a warning.
 *
 * It is a grpc-js CertificateProvider (experimental API, used with grpc-js 1.14) for the gRPC server, and gives
 * node TLS servers the same updates (setSecureContext), so one timer serves both ports.
 */
export class ReloadingCertificates implements CertificateProvider {
  readonly requireClientCertificate: boolean;
  private current: PemSet;
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  private readonly contextListeners = new Set<(options: SecureContextOptions) => void>();
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(private readonly options: ReloadingCertificatesOptions) {
    this.requireClientCertificate = options.clientCaFile !== undefined;
    this.current = this.readInitial();
    this.logLoaded('tls certificate loaded');
  }

  /** When the served certificate expires (its notAfter), for the expiry gauge. */
  get notAfter(): Date | undefined {
    const leaf = firstCertificate(this.current.cert);
    return leaf ? new Date(leaf.validTo) : undefined;
  }

  /** Certificate and key for a node TLS server (the ops port: no client certificates, probes cannot present one). */
  serverContextOptions(): SecureContextOptions {
    return { cert: this.current.cert, key: this.current.key };
  }

  /** Called with the new certificate and key after each reload; returns the unsubscribe function. */
  onServerContextChange(listener: (options: SecureContextOptions) => void): () => void {
    this.contextListeners.add(listener);
    this.startTimer();
    return () => {
      this.contextListeners.delete(listener);
      this.stopTimerIfUnused();
    };
  }

  /**
   * Re-reads the files and switches to them if they changed and are valid. Runs on the timer; public so
   * an operator signal or a test can trigger it. Concurrent calls share one read.
   */
  reload(): Promise<void> {
    this.checking ??= this.readAndApply().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    this.startTimer();
    // Asynchronously: grpc-js registers its own watcher only after adding this listener.
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener({ certificate: this.current.cert, privateKey: this.current.key });
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
    this.stopTimerIfUnused();
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    this.startTimer();
    process.nextTick(() => {
      if (this.caListeners.has(listener) && this.current.ca) listener({ caCertificate: this.current.ca });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
    this.stopTimerIfUnused();
  }

  private readInitial(): PemSet {
    const read = (file: string, variable: string): Buffer => {
      try {
        const content = readFileSync(file);
        if (content.length > MAX_PEM_BYTES) throw new Error(`larger than ${MAX_PEM_BYTES} bytes`);
        return content;
      } catch (error) {
        throw new ConfigError(`${variable} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    };
    const set: PemSet = {
      cert: read(this.options.certFile, 'TLS_CERT_FILE'),
      key: read(this.options.keyFile, 'TLS_KEY_FILE'),
      ca: this.options.clientCaFile === undefined ? undefined : read(this.options.clientCaFile, 'TLS_CLIENT_CA_FILE'),
    };
    const problem = problemOf(set);
    if (problem) throw new ConfigError(`TLS_CERT_FILE ${this.options.certFile}, TLS_KEY_FILE ${this.options.keyFile}: ${problem}`);
    return set;
  }

  private async readAndApply(): Promise<void> {
    let next: PemSet;
    try {
      const [cert, key, ca] = await Promise.all([
        readFile(this.options.certFile),
        readFile(this.options.keyFile),
        this.options.clientCaFile === undefined ? undefined : readFile(this.options.clientCaFile),
      ]);
      next = { cert, key, ca };
    } catch (error) {
      this.options.logger.warn({ err: error }, 'tls files unreadable; keeping the current certificate');
      return;
    }
    const unchanged =
      next.cert.equals(this.current.cert) && next.key.equals(this.current.key) && (next.ca === undefined || (this.current.ca !== undefined && next.ca.equals(this.current.ca)));
    if (unchanged) return;
    const problem = [next.cert, next.key, next.ca].some((pem) => pem !== undefined && pem.length > MAX_PEM_BYTES)
      ? `a file is larger than ${MAX_PEM_BYTES} bytes`
      : problemOf(next);
    if (problem) {
      // Typically a rotation caught between writing the certificate and the key: the next check sees both.
      this.options.logger.warn({ certFile: this.options.certFile, keyFile: this.options.keyFile, problem }, 'new tls files are not usable yet; keeping the current certificate');
      return;
    }
    this.current = next;
    this.logLoaded('tls certificate reloaded; new connections use it');
    for (const listener of this.identityListeners) listener({ certificate: next.cert, privateKey: next.key });
    if (next.ca) for (const listener of this.caListeners) listener({ caCertificate: next.ca });
    for (const listener of this.contextListeners) listener(this.serverContextOptions());
  }

  private logLoaded(message: string): void {
    const leaf = firstCertificate(this.current.cert);
    this.options.logger.info(
      {
        certFile: this.options.certFile,
        subject: leaf?.subject.replace(/\n/g, ', '),
        validTo: leaf ? new Date(leaf.validTo).toISOString() : undefined,
        mutualTls: this.requireClientCertificate,
      },
      message,
    );
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.reload(), this.options.reloadIntervalMs);
    // Never what keeps a process alive: servers do that.
    this.timer.unref();
  }

  private stopTimerIfUnused(): void {
    if (this.identityListeners.size + this.caListeners.size + this.contextListeners.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Why a certificate set cannot serve (no private material in the message), or undefined. */
function problemOf(set: PemSet): string | undefined {
  try {
    createSecureContext({ cert: set.cert, key: set.key, ca: set.ca });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  if (!firstCertificate(set.cert)) return 'no PEM certificate in the certificate file';
  return undefined;
}

function firstCertificate(pem: Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}
