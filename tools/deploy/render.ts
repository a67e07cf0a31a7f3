// Renders the chart with helm and parses the manifests, for the chart tests.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { chartDir, helm, workspaceRoot } from './helm';

export { chartDir, helm, workspaceRoot };

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  [key: string]: unknown;
}

/** The values sets CI renders: the chart's defaults, the production-like and the minimal example. */
export const valuesSets: Record<string, string[]> = {
  default: [],
  production: ['-f', join(chartDir, 'examples', 'values-production.yaml')],
  minimal: ['-f', join(chartDir, 'examples', 'values-minimal.yaml')],
};

export const releaseName = 'ci';

export function renderChart(extraArgs: readonly string[] = []): Manifest[] {
  const result = helm(['template', releaseName, chartDir, '--namespace', 'tolls', ...extraArgs]);
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseManifests(result.stdout);
}

export function parseManifests(text: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const document of parseAllDocuments(text, { uniqueKeys: true })) {
    if (document.errors.length > 0) throw new Error(document.errors.map((error) => error.message).join('\n'));
    const value = document.toJS() as Manifest | null;
    if (value) manifests.push(value);
  }
  return manifests;
}

/** Apps that are services: they run under the service kit (`runService`) and have a config schema. */
export function serviceApps(): string[] {
  const appsDir = join(workspaceRoot, 'apps');
  return readdirSync(appsDir)
    .filter((app) => {
      const main = join(appsDir, app, 'src', 'main.ts');
      const config = join(appsDir, app, 'src', 'config.ts');
      return existsSync(config) || (existsSync(main) && readFileSync(main, 'utf8').includes('runService('));
    })
    .sort();
}

/**
 * The environment variable names a service's config schema accepts: the keys of the zod object that
 * `loadConfig` reads (apps/<app>/src/config.ts, its export named *ConfigSchema). Loaded by path at run
 * time, so that any app under apps/ is found without this project depending on the apps.
 */
export async function acceptedEnvNames(app: string): Promise<string[]> {
  const path = join(workspaceRoot, 'apps', app, 'src', 'config.ts');
  if (!existsSync(path)) throw new Error(`apps/${app} is a service without src/config.ts`);
  const module = (await import(path)) as Record<string, unknown>;
  const schemas = Object.entries(module).filter(
    ([name, value]) => /ConfigSchema$/.test(name) && typeof value === 'object' && value !== null && 'shape' in value,
  );
  if (schemas.length !== 1) throw new Error(`apps/${app}/src/config.ts: expected one export named *ConfigSchema with a shape, found ${schemas.length}`);
  const shape = (schemas[0][1] as { shape: Record<string, unknown> }).shape;
  return Object.keys(shape).sort();
}

/** Every variable name a Deployment's container gets: env entries plus the keys of envFrom ConfigMaps/Secrets. */
export function deploymentEnvNames(deployment: Manifest, manifests: readonly Manifest[]): string[] {
  const names = new Set<string>();
  const podSpec = (deployment.spec as { template: { spec: PodSpec } }).template.spec;
  for (const container of podSpec.containers) {
    for (const entry of container.env ?? []) names.add(entry.name);
    for (const source of container.envFrom ?? []) {
      const reference = source.configMapRef ?? source.secretRef;
      const kind = source.configMapRef ? 'ConfigMap' : 'Secret';
      const object = manifests.find((m) => m.kind === kind && m.metadata.name === reference?.name);
      if (!object) throw new Error(`${deployment.metadata.name}: envFrom ${kind} ${reference?.name} is not rendered by the chart`);
      for (const key of Object.keys(object.data ?? {})) names.add(`${source.prefix ?? ''}${key}`);
    }
  }
  return [...names].sort();
}

export interface PodSpec {
  containers: Array<{
    name: string;
    env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
    envFrom?: Array<{ prefix?: string; configMapRef?: { name: string }; secretRef?: { name: string } }>;
    ports?: Array<{ name?: string; containerPort: number }>;
    volumeMounts?: Array<{ name: string; mountPath: string }>;
    livenessProbe?: { httpGet?: { path: string; port: string | number } };
    readinessProbe?: { httpGet?: { path: string; port: string | number } };
    startupProbe?: { httpGet?: { path: string; port: string | number } };
    resources?: { limits?: { memory?: string } };
  }>;
  volumes?: Array<{ name: string }>;
  terminationGracePeriodSeconds?: number;
}
