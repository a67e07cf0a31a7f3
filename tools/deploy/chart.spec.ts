// The Helm chart (deploy/helm/tollstream): lint, render with every values set, validate the rendered
// manifests against the Kubernetes schemas (kubernetes-models), check that the objects refer to each other
// correctly, and that values.schema.json rejects wrong values with a clear message.
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { chartDir, helm, type Manifest, type PodSpec, renderChart, serviceApps, valuesSets } from './render';

interface Validatable {
  validate(): void;
}
const kubernetesModels: Record<string, (manifest: Manifest) => Validatable> = {
  'v1/ConfigMap': (m) => new ConfigMap(m as never),
  'v1/Service': (m) => new Service(m as never),
  'v1/ServiceAccount': (m) => new ServiceAccount(m as never),
  'apps/v1/Deployment': (m) => new Deployment(m as never),
  'autoscaling/v2/HorizontalPodAutoscaler': (m) => new HorizontalPodAutoscaler(m as never),
  'batch/v1/Job': (m) => new Job(m as never),
  'networking.k8s.io/v1/NetworkPolicy': (m) => new NetworkPolicy(m as never),
  'policy/v1/PodDisruptionBudget': (m) => new PodDisruptionBudget(m as never),
};
/** Custom resources (no schema in kubernetes-models): checked structurally below. */
const customResources = new Set(['monitoring.coreos.com/v1/ServiceMonitor', 'keda.sh/v1alpha1/ScaledObject']);

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels?.[key] === value);

describe.each(Object.entries(valuesSets))('the chart with %s values', (_name, args) => {
  let manifests: Manifest[];
  beforeAll(() => {
    manifests = renderChart(args);
  });
  const ofKind = (kind: string) => manifests.filter((m) => m.kind === kind);
  const podLabels = (deployment: Manifest) => (deployment.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
  const podSpec = (deployment: Manifest) => (deployment.spec as { template: { spec: PodSpec } }).template.spec;

  it('passes helm lint --strict', () => {
    const result = helm(['lint', '--strict', chartDir, ...args]);
    expect(`${result.stdout}${result.stderr}`).toContain('0 chart(s) failed');
    expect(result.status).toBe(0);
  });

  it('renders only objects that validate against the Kubernetes schemas', () => {
    expect(manifests.length).toBeGreaterThan(0);
    const errors: string[] = [];
    for (const manifest of manifests) {
      const type = `${manifest.apiVersion}/${manifest.kind}`;
      if (customResources.has(type)) continue;
      const model = kubernetesModels[type];
      if (!model) {
        errors.push(`${type} ${manifest.metadata.name}: no schema known to this test (add it)`);
        continue;
      }
      try {
        model(manifest).validate();
      } catch (error) {
        errors.push(`${type} ${manifest.metadata.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    expect(errors).toEqual([]);
  });

  it('has a validator that rejects a wrong object (guards the schema check itself)', () => {
    const deployment = manifests.find((m) => m.kind === 'Deployment') as Manifest;
    const broken = { ...deployment, spec: { ...deployment.spec, replicas: 'two' } };
    expect(() => kubernetesModels['apps/v1/Deployment'](broken).validate()).toThrow(/replicas/);
  });

  it('gives names that are unique per kind and valid DNS labels', () => {
    const seen = new Set<string>();
    for (const manifest of manifests) {
      const key = `${manifest.kind}/${manifest.metadata.name}`;
      expect(seen.has(key)).toBe(false);
      seen.add(key);
      expect(manifest.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    }
  });

  it('probes the health endpoints on the http port, runs as non-root, and outlasts the graceful shutdown', () => {
    for (const deployment of ofKind('Deployment')) {
      const spec = podSpec(deployment);
      const configMap = ofKind('ConfigMap').find((m) => m.metadata.name === deployment.metadata.name);
      const graceMs = Number(/^(\d+)s$/.exec(configMap?.data?.['SHUTDOWN_GRACE_MS'] ?? '')?.[1]) * 1000;
      expect(graceMs).toBeGreaterThan(0);
      expect((spec.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(graceMs);
      const [container] = spec.containers;
      const portNames = (container.ports ?? []).map((port) => port.name);
      expect(portNames).toContain('http');
      expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(container.startupProbe?.httpGet?.path).toBe('/healthz');
      const security = (deployment.spec as { template: { spec: { securityContext: { runAsNonRoot: boolean } } } }).template.spec.securityContext;
      expect(security.runAsNonRoot).toBe(true);
      const volumes = new Set((spec.volumes ?? []).map((volume) => volume.name));
      for (const mount of container.volumeMounts ?? []) expect(volumes.has(mount.name)).toBe(true);
      // Port variables in the ConfigMap agree with the container ports.
      for (const port of container.ports ?? []) expect(Object.values(configMap?.data ?? {})).toContain(String(port.containerPort));
    }
  });

  it('points Services, PDBs, NetworkPolicies and ServiceMonitors at pods that exist, and autoscalers at Deployments', () => {
    const deployments = ofKind('Deployment');
    for (const service of ofKind('Service')) {
      const spec = service.spec as { selector: Record<string, string>; ports: Array<{ targetPort: string }> };
      const target = deployments.find((d) => matches(spec.selector, podLabels(d)));
      expect(target).toBeDefined();
      const portNames = (podSpec(target as Manifest).containers[0].ports ?? []).map((port) => port.name);
      for (const port of spec.ports) expect(portNames).toContain(port.targetPort);
    }
    for (const kind of ['PodDisruptionBudget', 'NetworkPolicy']) {
      for (const object of ofKind(kind)) {
        const selector = kind === 'NetworkPolicy' ? (object.spec as { podSelector: { matchLabels: Record<string, string> } }).podSelector : (object.spec as { selector: { matchLabels: Record<string, string> } }).selector;
        expect(deployments.filter((d) => matches(selector.matchLabels, podLabels(d)))).toHaveLength(1);
      }
    }
    for (const monitor of ofKind('ServiceMonitor')) {
      const spec = monitor.spec as { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> };
      const services = ofKind('Service').filter((s) => matches(spec.selector.matchLabels, s.metadata.labels));
      expect(services).toHaveLength(1);
      expect(spec.endpoints).toEqual([expect.objectContaining({ port: 'http', path: '/metrics' })]);
    }
    const deploymentNames = deployments.map((d) => d.metadata.name);
    for (const hpa of ofKind('HorizontalPodAutoscaler')) {
      expect(deploymentNames).toContain((hpa.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name);
    }
    for (const scaled of ofKind('ScaledObject')) {
      const spec = scaled.spec as { scaleTargetRef: { name: string }; triggers: Array<{ type: string; metadata: Record<string, string> }> };
      expect(deploymentNames).toContain(spec.scaleTargetRef.name);
      for (const trigger of spec.triggers) {
        expect(trigger.type).toBe('nats-jetstream');
        expect(trigger.metadata).toEqual(expect.objectContaining({ stream: expect.stringMatching(/^TOLL_/), consumer: expect.any(String), lagThreshold: expect.stringMatching(/^\d+$/) }));
      }
    }
    // An autoscaled Deployment leaves replicas to the autoscaler.
    const autoscaled = new Set([...ofKind('HorizontalPodAutoscaler'), ...ofKind('ScaledObject')].map((o) => (o.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name));
    for (const deployment of deployments) {
      expect((deployment.spec as { replicas?: number }).replicas === undefined).toBe(autoscaled.has(deployment.metadata.name));
    }
  });

  it('has a migration Job running `tollstream migrate` against the ClickHouse server', () => {
    const [job] = ofKind('Job');
    expect(job.metadata.annotations?.['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const container = (job.spec as { template: { spec: PodSpec & { containers: Array<{ image: string; args: string[] }> } } }).template.spec.containers[0];
    expect(container.image).toMatch(/\/cli:/);
    expect(container.args[0]).toBe('migrate');
    expect((container.env ?? []).map((entry) => entry.name).sort()).toEqual(['CLICKHOUSE_URL', 'WAREHOUSE_DATABASE']);
  });

  it('deploys every service under apps/', () => {
    const deployed = ofKind('Deployment').map((d) => d.metadata.labels?.['app.kubernetes.io/name']).sort();
    expect(deployed).toEqual(serviceApps());
  });
});

describe('values.schema.json', () => {
  const rejected = (...set: string[]) => {
    const result = helm(['template', 'ci', chartDir, ...set.flatMap((value) => ['--set', value])]);
    expect(result.status).not.toBe(0);
    return result.stderr;
  };

  it('rejects wrong values with the path and the reason', () => {
    expect(rejected('broker.streamReplicas=7')).toContain("at '/broker/streamReplicas': maximum: got 7, want 5");
    expect(rejected('services.windower.autoscaling.mode=fast')).toMatch(/\/services\/windower\/autoscaling\/mode.*one of 'none', 'cpu', 'keda'/);
    expect(rejected('services.ingestor.env.lower_case=1')).toMatch(/at '\/services\/ingestor\/env': additional properties 'lower_case' not allowed/);
    expect(rejected('broker.url=http://nats:4222')).toContain('/broker/url');
    expect(rejected('services.ingestor.replicaz=2')).toMatch(/additional properties 'replicaz' not allowed/);
    expect(rejected('shutdownGraceSeconds=0')).toContain('/shutdownGraceSeconds');
  });

  it('explains a missing requirement of the KEDA scaler', () => {
    expect(rejected('services.windower.autoscaling.mode=keda')).toContain('services.windower.autoscaling.consumer');
  });
});
