// In-process TLS (ADR 0017) against real servers: the gRPC bootstrap and the ops HTTP port, with a
// certificate authority made in the test (openssl), mutual TLS, and certificates replaced on disk.
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { createTestCertificateAuthority, tempDir, waitFor, type TestCertificateAuthority, type TestCertificateFiles, type TempDirHandle } from '@tollstream/testing';
import { z } from 'zod';
import { ConfigError, loadConfig } from './config';
import { startGrpcServer, type GrpcServerHandle, type GrpcServiceRegistration } from './grpc-server';
import { createLogger } from './logger';
import { createMetricsRegistry } from './metrics';
import { readMetrics } from './metrics-text';
import { startOpsHttpServer, type OpsHttpServer } from './ops-http-server';
import { grpcTlsConfigShape, loadServiceTls, tlsConfigShape, type ServiceTls, type TlsConfig } from './tls';
import { ClientTlsError, grpcClientCredentials, httpsGetText, type ClientTlsOptions } from './tls-client';

const silent = createLogger({ service: 'tls-test', level: 'silent' });

const identity = (value: Buffer): Buffer => value;
const echoService: GrpcServiceRegistration = {
  name: 'test.v1.Echo',
  definition: {
    echo: { path: '/test.v1.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  },
  implementation: {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
  },
};

/** One call on a new channel (so a new TLS handshake) with these client settings. */
async function echoOverNewChannel(port: number, tls: ClientTlsOptions): Promise<string> {
  const { credentials, channelOptions } = grpcClientCredentials(tls);
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, channelOptions);
  try {
    return await new Promise<string>((resolve, reject) => {
      client.makeUnaryRequest('/test.v1.Echo/Echo', identity, identity, Buffer.from('hello'), { deadline: Date.now() + 5_000 }, (error, reply) =>
        error || !reply ? reject(error) : resolve(reply.toString()),
      );
    });
  } finally {
    client.close();
  }
}

function tlsConfig(server: TestCertificateFiles, extra: Partial<TlsConfig> = {}): TlsConfig {
  return { TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_RELOAD_INTERVAL: 60_000, TLS_OPS_HTTP: true, ...extra };
}

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: () => string } {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  return { logger: createLogger({ service: 'tls-test', level: 'info' }, destination), lines: () => text };
}

let dir: TempDirHandle;
let ca: TestCertificateAuthority;
let otherCa: TestCertificateAuthority;
let server: TestCertificateFiles;

beforeAll(async () => {
  dir = await tempDir('tls');
  ca = createTestCertificateAuthority(dir.path, 'ca');
  otherCa = createTestCertificateAuthority(dir.path, 'other-ca');
  server = ca.issueServer('server');
});
afterAll(() => dir.remove());

describe('TLS configuration', () => {
  it('reads the variables with their defaults; an empty environment means plaintext', () => {
    const config = loadConfig(z.object(grpcTlsConfigShape), {});
    expect(config).toEqual({ TLS_RELOAD_INTERVAL: 60_000, TLS_OPS_HTTP: true });
    expect(loadServiceTls(config, silent)).toBeUndefined();
    expect(loadConfig(z.object(tlsConfigShape), { TLS_RELOAD_INTERVAL: '5m', TLS_OPS_HTTP: 'false' })).toMatchObject({ TLS_RELOAD_INTERVAL: 300_000, TLS_OPS_HTTP: false });
    expect(() => loadConfig(z.object(tlsConfigShape), { TLS_RELOAD_INTERVAL: '100ms' })).toThrow('TLS_RELOAD_INTERVAL: expected a duration from 1s to 24h, got "100ms"');
  });

  it('refuses half a configuration with the variable to set', () => {
    expect(() => loadServiceTls({ TLS_CERT_FILE: server.certFile, TLS_RELOAD_INTERVAL: 60_000, TLS_OPS_HTTP: true }, silent)).toThrow(
      new ConfigError('TLS_KEY_FILE: required when TLS_CERT_FILE is set'),
    );
    expect(() => loadServiceTls({ TLS_KEY_FILE: server.keyFile, TLS_RELOAD_INTERVAL: 60_000, TLS_OPS_HTTP: true }, silent)).toThrow('TLS_CERT_FILE: required when TLS_KEY_FILE is set');
    expect(() => loadServiceTls({ TLS_CLIENT_CA_FILE: ca.caFile, TLS_RELOAD_INTERVAL: 60_000, TLS_OPS_HTTP: true }, silent)).toThrow(/TLS_CLIENT_CA_FILE: mutual TLS needs the server certificate/);
  });

  it('refuses files it cannot use at start-up, naming the variable and the file, never the key', () => {
    const missing = join(dir.path, 'missing.crt');
    expect(() => loadServiceTls(tlsConfig({ ...server, certFile: missing }), silent)).toThrow(`TLS_CERT_FILE ${missing}: ENOENT`);
    const other = ca.issueServer('mismatch');
    let error: unknown;
    try {
      loadServiceTls(tlsConfig({ certFile: server.certFile, keyFile: other.keyFile }), silent);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/^TLS_CERT_FILE .*server\.crt, TLS_KEY_FILE .*mismatch\.key: .*key values mismatch/);
    expect((error as Error).message).not.toContain('PRIVATE KEY');
  });
});

describe('the gRPC server with TLS', () => {
  let tls: ServiceTls;
  let handle: GrpcServerHandle;
  beforeAll(async () => {
    tls = loadServiceTls(tlsConfig(server), silent) as ServiceTls;
    handle = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [echoService], logger: silent, tls });
  });
  afterAll(() => handle.shutdown(100));

  it('answers a client that trusts the CA', async () => {
    expect(await echoOverNewChannel(handle.port, { caFile: ca.caFile })).toBe('hello');
  });

  it('is refused by a client that does not trust the CA, and by a plaintext client', async () => {
    await expect(echoOverNewChannel(handle.port, { tls: true })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(echoOverNewChannel(handle.port, { caFile: otherCa.caFile })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(echoOverNewChannel(handle.port, {})).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('checks the server name: a name the certificate does not carry is refused, an override to one it carries works', async () => {
    const { credentials } = grpcClientCredentials({ caFile: ca.caFile, serverName: 'wrong.example' });
    const client = new grpc.Client(`127.0.0.1:${handle.port}`, credentials, { 'grpc.ssl_target_name_override': 'wrong.example' });
    try {
      await expect(
        new Promise((resolve, reject) =>
          client.makeUnaryRequest('/test.v1.Echo/Echo', identity, identity, Buffer.from('x'), { deadline: Date.now() + 5_000 }, (error, reply) => (error ? reject(error) : resolve(reply))),
        ),
      ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    } finally {
      client.close();
    }
    expect(await echoOverNewChannel(handle.port, { caFile: ca.caFile, serverName: 'localhost' })).toBe('hello');
  });
});

describe('the gRPC server with mutual TLS', () => {
  let handle: GrpcServerHandle;
  let client: TestCertificateFiles;
  beforeAll(async () => {
    client = ca.issueClient('station-st-001');
    const tls = loadServiceTls(tlsConfig(server, { TLS_CLIENT_CA_FILE: ca.caFile }), silent) as ServiceTls;
    expect(tls.certificates.requireClientCertificate).toBe(true);
    handle = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [echoService], logger: silent, tls });
  });
  afterAll(() => handle.shutdown(100));

  it('answers a client presenting a certificate signed by the client CA', async () => {
    expect(await echoOverNewChannel(handle.port, { caFile: ca.caFile, certFile: client.certFile, keyFile: client.keyFile })).toBe('hello');
  });

  it('refuses a client without a certificate, and one whose certificate another CA signed', async () => {
    await expect(echoOverNewChannel(handle.port, { caFile: ca.caFile })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    const stranger = otherCa.issueClient('stranger');
    await expect(echoOverNewChannel(handle.port, { caFile: ca.caFile, ...stranger })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('tells a client with half a client certificate what is missing', () => {
    expect(() => grpcClientCredentials({ caFile: ca.caFile, certFile: client.certFile })).toThrow(new ClientTlsError('a client certificate needs both --tls-cert-file and --tls-key-file'));
    expect(() => grpcClientCredentials({ caFile: join(dir.path, 'nope.crt') })).toThrow(/cannot read the CA file .*nope\.crt: ENOENT/);
  });
});

describe('the ops HTTP port with TLS', () => {
  let ops: OpsHttpServer;
  beforeAll(async () => {
    const tls = loadServiceTls(tlsConfig(server, { TLS_CLIENT_CA_FILE: ca.caFile }), silent) as ServiceTls;
    ops = await startOpsHttpServer({ host: '127.0.0.1', port: 0, registry: createMetricsRegistry('tls-test'), isReady: () => true, logger: silent, tls });
  });
  afterAll(() => ops.close());

  it('serves /healthz, /readyz and /metrics over HTTPS without asking for a client certificate (probes have none)', async () => {
    expect(await httpsGetText(`https://127.0.0.1:${ops.port}/healthz`, { caFile: ca.caFile }, 5_000)).toEqual({ status: 200, text: '{"status":"ok"}' });
    expect((await httpsGetText(`https://localhost:${ops.port}/readyz`, { caFile: ca.caFile }, 5_000)).status).toBe(200);
    const samples = await readMetrics(`https://127.0.0.1:${ops.port}/metrics`, 5_000, { caFile: ca.caFile });
    expect(samples.some((sample) => sample.name === 'process_cpu_user_seconds_total')).toBe(true);
    // The test CA issues for two days.
    const expiry = samples.find((sample) => sample.name === 'tollstream_tls_certificate_expiry_timestamp_seconds')?.value ?? 0;
    expect(expiry * 1000 - Date.now()).toBeGreaterThan(47 * 3_600_000);
    expect(expiry * 1000 - Date.now()).toBeLessThan(49 * 3_600_000);
  });

  it('is refused by a client that does not trust the CA and does not answer plain HTTP', async () => {
    await expect(httpsGetText(`https://127.0.0.1:${ops.port}/healthz`, { caFile: otherCa.caFile }, 5_000)).rejects.toThrow(/self-signed certificate in certificate chain|unable to verify/);
    await expect(fetch(`http://127.0.0.1:${ops.port}/healthz`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
  });

  it('stays plaintext when TLS_OPS_HTTP is false', async () => {
    const tls = loadServiceTls(tlsConfig(server, { TLS_OPS_HTTP: false }), silent) as ServiceTls;
    const plain = await startOpsHttpServer({ host: '127.0.0.1', port: 0, registry: createMetricsRegistry('tls-test'), isReady: () => true, logger: silent, tls });
    try {
      expect((await fetch(`http://127.0.0.1:${plain.port}/healthz`)).status).toBe(200);
    } finally {
      await plain.close();
    }
  });
});

describe('certificate rotation', () => {
  it('new connections of both ports see the replaced certificate; a half-replaced pair keeps the old one', async () => {
    // The served files live in their own directory and are replaced the way a Secret volume is: by rename.
    const served = await tempDir('tls-served');
    const certFile = join(served.path, 'tls.crt');
    const keyFile = join(served.path, 'tls.key');
    copyFileSync(server.certFile, certFile);
    copyFileSync(server.keyFile, keyFile);
    const replace = (target: string, source: string): void => {
      copyFileSync(source, `${target}.new`);
      renameSync(`${target}.new`, target);
    };

    const { logger, lines } = capturingLogger();
    const tls = loadServiceTls({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_RELOAD_INTERVAL: 1_000, TLS_OPS_HTTP: true }, logger) as ServiceTls;
    const grpcServer = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [echoService], logger: silent, tls });
    const ops = await startOpsHttpServer({ host: '127.0.0.1', port: 0, registry: createMetricsRegistry('tls-test'), isReady: () => true, logger: silent, tls });
    const healthz = (caFile: string) => httpsGetText(`https://127.0.0.1:${ops.port}/healthz`, { caFile }, 5_000);
    try {
      expect(await echoOverNewChannel(grpcServer.port, { caFile: ca.caFile })).toBe('hello');
      expect((await healthz(ca.caFile)).status).toBe(200);

      // The operator rotates to a certificate of another CA; the certificate lands first, the key later.
      const rotated = otherCa.issueServer('rotated');
      replace(certFile, rotated.certFile);
      await waitFor(() => lines().includes('new tls files are not usable yet'), { timeoutMs: 5_000, description: 'the half-replaced pair to be noticed' });
      expect(lines()).toContain('key values mismatch');
      expect(await echoOverNewChannel(grpcServer.port, { caFile: ca.caFile })).toBe('hello');
      expect((await healthz(ca.caFile)).status).toBe(200);

      replace(keyFile, rotated.keyFile);
      await waitFor(() => lines().includes('tls certificate reloaded'), { timeoutMs: 5_000, description: 'the reload' });
      expect(await echoOverNewChannel(grpcServer.port, { caFile: otherCa.caFile })).toBe('hello');
      await expect(echoOverNewChannel(grpcServer.port, { caFile: ca.caFile })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect((await healthz(otherCa.caFile)).status).toBe(200);
      await expect(healthz(ca.caFile)).rejects.toThrow();
      expect(lines()).not.toContain('PRIVATE KEY');
    } finally {
      await grpcServer.shutdown(100);
      await ops.close();
      await served.remove();
    }
  });

  it('keeps serving when the files disappear or turn to garbage, and reloads explicitly on reload()', async () => {
    const served = await tempDir('tls-served');
    const certFile = join(served.path, 'tls.crt');
    const keyFile = join(served.path, 'tls.key');
    copyFileSync(server.certFile, certFile);
    copyFileSync(server.keyFile, keyFile);
    const { logger, lines } = capturingLogger();
    const tls = loadServiceTls({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_RELOAD_INTERVAL: 3_600_000, TLS_OPS_HTTP: true }, logger) as ServiceTls;
    const grpcServer = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [echoService], logger: silent, tls });
    try {
      writeFileSync(certFile, 'not a certificate');
      await tls.certificates.reload();
      expect(lines()).toContain('new tls files are not usable yet');
      expect(await echoOverNewChannel(grpcServer.port, { caFile: ca.caFile })).toBe('hello');

      await served.remove();
      await tls.certificates.reload();
      expect(lines()).toContain('tls files unreadable');
      expect(await echoOverNewChannel(grpcServer.port, { caFile: ca.caFile })).toBe('hello');
    } finally {
      await grpcServer.shutdown(100);
    }
  });
});
