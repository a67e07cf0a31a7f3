// Every service with in-process TLS (ADR 0017): the six services as separate processes, all configured
// with the same TLS_* variables and a CA made in the test; each gRPC port answers grpc.health.v1 only over
// mutual TLS, each ops port answers /healthz only over HTTPS.
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { grpcClientCredentials, httpsGetText, type ClientTlsOptions } from '@tollstream/service-kit';
import { createTestCertificateAuthority, tempDir, type TempDirHandle, type TestCertificateAuthority, type TestCertificateFiles } from '@tollstream/testing';
import { service as healthService } from 'grpc-health-check';
import { SERVICES, startPipeline, type Pipeline } from './pipeline';

jest.setTimeout(240_000);

const GRPC_SERVICES = ['ingestor', 'billing-threshold', 'traffic-anomaly', 'notifier'] as const;

async function healthOver(port: number, tls: ClientTlsOptions): Promise<string> {
  const { credentials, channelOptions } = grpcClientCredentials(tls);
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, channelOptions);
  const check = healthService['Check'] as protoLoader.MethodDefinition<{ service: string }, { status: string }>;
  try {
    return await new Promise<string>((resolve, reject) =>
      client.makeUnaryRequest(check.path, check.requestSerialize, check.responseDeserialize, { service: '' }, { deadline: Date.now() + 10_000 }, (error, reply) =>
        error || !reply ? reject(error) : resolve(reply.status),
      ),
    );
  } finally {
    client.close();
  }
}

let pipeline: Pipeline | undefined;
let dir: TempDirHandle;
let ca: TestCertificateAuthority;
let station: TestCertificateFiles;

beforeAll(async () => {
  dir = await tempDir('e2e-tls');
  ca = createTestCertificateAuthority(dir.path, 'ca');
  const server = ca.issueServer('services');
  station = ca.issueClient('client');
  pipeline = await startPipeline('e2e-tls', { env: { TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CLIENT_CA_FILE: ca.caFile } });
  await pipeline.start('traffic-anomaly');
  await pipeline.start('windower');
});
afterAll(async () => {
  await pipeline?.close();
  await dir?.remove();
});

it.each(GRPC_SERVICES)('%s answers gRPC health over mutual TLS, and refuses a client without a certificate or without TLS', async (name) => {
  const port = pipeline?.services.get(name)?.grpcPort ?? 0;
  expect(await healthOver(port, { caFile: ca.caFile, certFile: station.certFile, keyFile: station.keyFile })).toBe('SERVING');
  await expect(healthOver(port, { caFile: ca.caFile })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  await expect(healthOver(port, {})).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
});

it.each([...SERVICES])('%s serves /healthz and /metrics over HTTPS only', async (name) => {
  const port = pipeline?.services.get(name)?.httpPort ?? 0;
  expect(await httpsGetText(`https://127.0.0.1:${port}/healthz`, { caFile: ca.caFile }, 5_000)).toEqual({ status: 200, text: '{"status":"ok"}' });
  const metrics = await httpsGetText(`https://127.0.0.1:${port}/metrics`, { caFile: ca.caFile }, 5_000);
  expect(metrics.text).toMatch(/^tollstream_tls_certificate_expiry_timestamp_seconds\{service="[a-z-]+"\} \d+/m);
  await expect(fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
});
