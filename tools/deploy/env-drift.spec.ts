// No drift between the chart and the services: every service under apps/ has its Deployment, and the
// environment variables the chart sets for it are exactly those its config schema accepts
// (apps/<app>/src/config.ts, read at test time; loadConfig reads exactly the schema's keys).
import { acceptedEnvNames, deploymentEnvNames, type Manifest, type PodSpec, renderChart, serviceApps, valuesSets } from './render';

const apps = serviceApps();
/** Variables of the Node.js runtime itself (the heap bound, maxHeapMiB), not of a service's config. */
const NODE_RUNTIME_VARIABLES = ['NODE_OPTIONS'];

it('finds the services under apps/ (and not the operator CLI or the traffic simulator, which are tools)', () => {
  expect(apps).toEqual(expect.arrayContaining(['billing-threshold', 'ingestor', 'warehouse-loader', 'windower']));
  expect(apps).not.toContain('cli');
  expect(apps).not.toContain('simulator');
});

describe.each(Object.entries(valuesSets))('with %s values', (_name, args) => {
  let manifests: Manifest[];
  beforeAll(() => {
    manifests = renderChart(args);
  });

  it.each(apps)('%s has a Deployment that sets exactly the variables its config accepts', async (app) => {
    const deployment = manifests.find((m) => m.kind === 'Deployment' && m.metadata.labels?.['app.kubernetes.io/name'] === app);
    if (!deployment) throw new Error(`apps/${app} has no Deployment: add services.${app} to deploy/helm/tollstream/values.yaml`);
    const accepted = await acceptedEnvNames(app);
    const set = deploymentEnvNames(deployment, manifests).filter((name) => !NODE_RUNTIME_VARIABLES.includes(name));
    expect({ app, setButNotAccepted: set.filter((name) => !accepted.includes(name)), acceptedButNotSet: accepted.filter((name) => !set.includes(name)) }).toEqual({
      app,
      setButNotAccepted: [],
      acceptedButNotSet: [],
    });
  });

  it('deploys nothing that is not a service under apps/', () => {
    const deployed = manifests.filter((m) => m.kind === 'Deployment').map((m) => m.metadata.labels?.['app.kubernetes.io/name']);
    expect(deployed.filter((name) => !apps.includes(name as string))).toEqual([]);
  });
});

it('sets each variable once per container (ConfigMap and secret references do not overlap)', () => {
  const manifests = renderChart(valuesSets['production']);
  for (const deployment of manifests.filter((m) => m.kind === 'Deployment')) {
    const configMap = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === deployment.metadata.name);
    const container = (deployment.spec as { template: { spec: { containers: Array<{ env?: Array<{ name: string }> }> } } }).template.spec.containers[0];
    for (const entry of container.env ?? []) expect(Object.keys(configMap?.data ?? {})).not.toContain(entry.name);
  }
});

describe.each(Object.entries(valuesSets))('the heap bound with %s values', (_name, args) => {
  it("bounds every service's V8 heap (NODE_OPTIONS) at 25-70 % of its container memory limit (the rest: young generation, buffers, code)", () => {
    const mebibytes = (quantity: string | undefined): number => {
      const match = /^(\d+)(Mi|Gi)$/.exec(quantity ?? '');
      return match ? Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1) : Number.NaN;
    };
    const outOfRange: string[] = [];
    for (const deployment of renderChart(args).filter((m) => m.kind === 'Deployment')) {
      const container = (deployment.spec as { template: { spec: PodSpec } }).template.spec.containers[0];
      const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(container.env?.find((entry) => entry.name === 'NODE_OPTIONS')?.value ?? '')?.[1]);
      const share = heapMiB / mebibytes(container.resources?.limits?.memory);
      if (!(share >= 0.25 && share <= 0.7)) outOfRange.push(`${deployment.metadata.name}: heap ${heapMiB} MiB, limit ${container.resources?.limits?.memory ?? 'none'}`);
    }
    expect(outOfRange).toEqual([]);
  });
});
