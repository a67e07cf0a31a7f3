import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** PEM files of one certificate: paths on disk. */
export interface TestCertificateFiles {
  certFile: string;
  keyFile: string;
}

export interface TestCertificateAuthority {
  /** The CA's certificate (what clients or servers trust). */
  caFile: string;
  /** A server certificate for localhost / 127.0.0.1 signed by this CA, written under `name`. */
  issueServer(name: string): TestCertificateFiles;
  /** A client certificate (clientAuth) signed by this CA. */
  issueClient(name: string): TestCertificateFiles;
}

/**
 * A throw-away certificate authority for TLS tests, made with the `openssl` command line (Debian package
 * `openssl`, present on the project's Debian base image; ADR 0017). EC P-256 keys: fast to generate.
 * Everything is written into `dir` (a tempDir of the test).
 */
export function createTestCertificateAuthority(dir: string, name = 'ca'): TestCertificateAuthority {
  const caKey = join(dir, `${name}.key`);
  const caFile = join(dir, `${name}.crt`);
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', `/CN=tollstream test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);

  const issue = (certName: string, extensions: string): TestCertificateFiles => {
    const keyFile = join(dir, `${certName}.key`);
    const certFile = join(dir, `${certName}.crt`);
    const csr = join(dir, `${certName}.csr`);
    const extFile = join(dir, `${certName}.ext`);
    writeFileSync(extFile, `${extensions}\nbasicConstraints=CA:FALSE\n`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${certName}`]);
    openssl([
      'x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
      '-days', '2', '-extfile', extFile, '-out', certFile,
    ]);
    return { certFile, keyFile };
  };

  return {
    caFile,
    issueServer: (certName) => issue(certName, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'),
    issueClient: (certName) => issue(certName, 'extendedKeyUsage=clientAuth'),
  };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? 'the TLS tests need the openssl command line (Debian: apt-get install -y openssl)'
        : `openssl ${args[0]} failed: ${stderr || (error as Error).message}`,
    );
  }
}
