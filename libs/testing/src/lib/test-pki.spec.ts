import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createTestCertificateAuthority } from './test-pki';
import { tempDir, type TempDirHandle } from './temp-dir';

describe('createTestCertificateAuthority', () => {
  let dir: TempDirHandle;
  beforeAll(async () => {
    dir = await tempDir('test-pki');
  });
  afterAll(() => dir.remove());

  it('issues server certificates for localhost and 127.0.0.1 and client certificates, signed by its CA only', () => {
    const ca = createTestCertificateAuthority(dir.path, 'ca');
    const other = createTestCertificateAuthority(dir.path, 'other');
    const caCert = new X509Certificate(readFileSync(ca.caFile));
    expect(caCert.ca).toBe(true);

    const server = new X509Certificate(readFileSync(ca.issueServer('server').certFile));
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
    expect(server.verify(caCert.publicKey)).toBe(true);
    expect(server.verify(new X509Certificate(readFileSync(other.caFile)).publicKey)).toBe(false);

    const client = new X509Certificate(readFileSync(ca.issueClient('client').certFile));
    expect(client.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    expect(client.checkIP('127.0.0.1')).toBeUndefined();
    expect(client.ca).toBe(false);
    expect(client.verify(caCert.publicKey)).toBe(true);
  });
});
