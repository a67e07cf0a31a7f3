// The station API with mutual TLS, end to end (ADR 0017): a real nats-server, the real ingestor process
// configured by TLS_* variables with a CA made in the test, and `tollstream send` / `tollstream watch`
// with their --tls-* options.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpsGetText } from '@tollstream/service-kit';
import {
  createTestCertificateAuthority,
  readTransactionStream,
  startIngestor,
  startNats,
  startService,
  tempDir,
  type NatsHandle,
  type ServiceProcess,
  type TempDirHandle,
  type TestCertificateAuthority,
  type TestCertificateFiles,
} from '@tollstream/testing';
import { runCli } from './program';
import { memoryIo } from './test-support';

jest.setTimeout(120_000); // a service process; under the multi-project root config the preset's timeout does not apply

const token = 'st-tls-token-0123456789abcdef';

describe('the station API with mutual TLS (real ingestor process)', () => {
  let nats: NatsHandle;
  let ingestor: ServiceProcess;
  let dir: TempDirHandle;
  let ca: TestCertificateAuthority;
  let station: TestCertificateFiles;
  let tokenFile: string;

  beforeAll(async () => {
    dir = await tempDir('cli-tls');
    ca = createTestCertificateAuthority(dir.path, 'ca');
    const server = ca.issueServer('ingestor');
    station = ca.issueClient('station-st-001');
    tokenFile = join(dir.path, 'station.token');
    writeFileSync(tokenFile, token);
    const credentialsFile = join(dir.path, 'stations.json');
    writeFileSync(credentialsFile, JSON.stringify({ stations: [{ name: 'tls', token, stationIds: ['st-001', 'st-002', 'st-003'] }] }));
    nats = await startNats();
    ingestor = await startIngestor({
      natsUrl: nats.url,
      credentialsFile,
      env: { TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CLIENT_CA_FILE: ca.caFile },
    });
  });
  afterAll(async () => {
    await ingestor?.stop();
    await nats?.stop();
    await dir?.remove();
  });

  async function sample(name: string, count: number): Promise<string> {
    const file = join(dir.path, `${name}.ndjson`);
    expect(await runCli(['sample', file, '--count', String(count), '--seed', name], memoryIo())).toBe(0);
    return file;
  }

  it('accepts a file sent with the station certificate', async () => {
    const file = await sample('with-certificate', 50);
    const io = memoryIo({ STATION_TOKEN_FILE: tokenFile, INGEST_ADDRESS: `127.0.0.1:${ingestor.grpcPort}` });
    const code = await runCli(['send', file, '--json', '--no-progress', '--tls-ca-file', ca.caFile, '--tls-cert-file', station.certFile, '--tls-key-file', station.keyFile], io);
    expect({ code, err: io.err() }).toEqual({ code: 0, err: '' });
    expect(JSON.parse(io.out())).toMatchObject({ accepted: 50, rejected: 0 });
    const nc = await connect({ servers: nats.url });
    try {
      expect((await readTransactionStream(await jetstreamManager(nc))).length).toBe(50);
    } finally {
      await nc.close();
    }
  });

  it('takes the TLS files from the environment too', async () => {
    const file = await sample('from-env', 10);
    const io = memoryIo({
      STATION_TOKEN_FILE: tokenFile,
      INGEST_ADDRESS: `127.0.0.1:${ingestor.grpcPort}`,
      TLS_CA_FILE: ca.caFile,
      TLS_CLIENT_CERT_FILE: station.certFile,
      TLS_CLIENT_KEY_FILE: station.keyFile,
    });
    expect(await runCli(['send', file, '--json', '--no-progress'], io)).toBe(0);
    expect(JSON.parse(io.out())).toMatchObject({ accepted: 10 });
  });

  it('fails with exit code 1 and the reason when the station has no certificate, or talks plaintext', async () => {
    const file = await sample('refused', 5);
    for (const tlsArgs of [['--tls-ca-file', ca.caFile], []]) {
      const io = memoryIo({ STATION_TOKEN_FILE: tokenFile, INGEST_ADDRESS: `127.0.0.1:${ingestor.grpcPort}` });
      const code = await runCli(['send', file, '--no-progress', '--restart', '--max-attempts', '2', '--deadline-ms', '3000', ...tlsArgs], io);
      expect(code).toBe(1);
      expect(io.err()).toMatch(/UNAVAILABLE/);
    }
  });

  it('documents the options in --help, with their environment variables', async () => {
    for (const command of ['send', 'watch']) {
      const io = memoryIo();
      await runCli([command, '--help'], io);
      for (const text of ['--tls ', 'TLS_ENABLED', '--tls-ca-file <file>', 'TLS_CA_FILE', '--tls-cert-file <file>', 'TLS_CLIENT_CERT_FILE', '--tls-key-file <file>', 'TLS_CLIENT_KEY_FILE', '--tls-server-name <name>']) {
        expect(io.out()).toContain(text);
      }
    }
  });

  it('refuses half a client certificate and an unreadable CA file before sending anything', async () => {
    const file = await sample('usage', 1);
    const env = { STATION_TOKEN_FILE: tokenFile, INGEST_ADDRESS: `127.0.0.1:${ingestor.grpcPort}` };
    const half = memoryIo(env);
    expect(await runCli(['send', file, '--tls-cert-file', station.certFile], half)).toBe(1);
    expect(half.err()).toBe('error: a client certificate needs both --tls-cert-file and --tls-key-file\n');
    const missing = memoryIo(env);
    expect(await runCli(['send', file, '--tls-ca-file', join(dir.path, 'nope.crt')], missing)).toBe(1);
    expect(missing.err()).toMatch(/^error: cannot read the CA file .*nope\.crt: ENOENT\n$/);
  });

  it('serves /healthz over HTTPS on the ops port, and `tollstream watch` reads /metrics from it', async () => {
    expect(await httpsGetText(`https://127.0.0.1:${ingestor.httpPort}/healthz`, { caFile: ca.caFile }, 5_000)).toEqual({ status: 200, text: '{"status":"ok"}' });
    const io = memoryIo({ NATS_URL: nats.url });
    const code = await runCli(['watch', '--once', '--json', '--interval', '1', '--ports', `ingestor=${ingestor.httpPort}`, '--tls-ca-file', ca.caFile], io);
    expect(code).toBe(0);
    const readings = io.out().trim().split('\n').map((line) => JSON.parse(line) as { services: Array<{ name: string; state: string; details: string }> });
    expect(readings[readings.length - 1].services.find((service) => service.name === 'ingestor')).toMatchObject({ state: 'up' });
    // Without the CA the same endpoint is not trusted.
    const untrusted = memoryIo({ NATS_URL: nats.url });
    await runCli(['watch', '--once', '--json', '--interval', '1', '--ports', `ingestor=${ingestor.httpPort}`, '--tls'], untrusted);
    const row = (JSON.parse(untrusted.out().trim().split('\n').pop() as string) as { services: Array<{ name: string; state: string; details: string }> }).services.find((service) => service.name === 'ingestor');
    expect(row).toMatchObject({ state: 'down', details: expect.stringMatching(/certificate/) });
  });
});

describe('tollstream sql through the query endpoint of a warehouse-loader with TLS (real loader process)', () => {
  let nats: NatsHandle;
  let loader: ServiceProcess;
  let dir: TempDirHandle;
  let ca: TestCertificateAuthority;
  let dataDir: string;

  beforeAll(async () => {
    dir = await tempDir('cli-sql-tls');
    ca = createTestCertificateAuthority(dir.path, 'ca');
    const server = ca.issueServer('loader');
    dataDir = join(dir.path, 'warehouse');
    nats = await startNats();
    loader = await startService({
      app: 'warehouse-loader',
      httpPortVariable: 'WAREHOUSE_HTTP_PORT',
      env: { NATS_URL: nats.url, WAREHOUSE_DATA_DIR: dataDir, WAREHOUSE_HTTP_HOST: '127.0.0.1', TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, LOG_LEVEL: 'info' },
    });
  });
  afterAll(async () => {
    await loader?.stop();
    await nats?.stop();
    await dir?.remove();
  });

  it('finds the https endpoint and queries it with --tls-ca-file; without the CA it says why', async () => {
    const io = memoryIo();
    expect(await runCli(['sql', 'SELECT 1 AS one', '--data-dir', dataDir, '--format', 'json', '--tls-ca-file', ca.caFile], io)).toBe(0);
    expect(JSON.parse(io.out())).toEqual([{ one: 1 }]);
    expect(io.err()).toBe('');
    const untrusted = memoryIo();
    expect(await runCli(['sql', 'SELECT 1', '--data-dir', dataDir, '--tls'], untrusted)).toBe(1);
    expect(untrusted.err()).toMatch(/^error: .*unable to verify the first certificate/);
  });
});
