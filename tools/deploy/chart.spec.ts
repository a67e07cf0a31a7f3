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
      // HTTPS exactly when the service serves its ops port with TLS (ADR 0017).
      const scheme = configMap?.data?.['TLS_CERT_FILE'] && configMap.data['TLS_OPS_HTTP'] === 'true' ? 'HTTPS' : 'HTTP';
      expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http', scheme });
      expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http', scheme });
      expect(container.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'http', scheme });
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

describe('in-process TLS (ADR 0017)', () => {
  interface SecretVolume {
    name: string;
    secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
  }
  const deploymentsOf = (manifests: Manifest[]) => manifests.filter((m) => m.kind === 'Deployment');
  const containerOf = (deployment: Manifest) => (deployment.spec as { template: { spec: PodSpec } }).template.spec.containers[0];
  const volumesOf = (deployment: Manifest) => ((deployment.spec as { template: { spec: { volumes?: SecretVolume[] } } }).template.spec.volumes ?? []);
  const configOf = (manifests: Manifest[], deployment: Manifest) => manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === deployment.metadata.name)?.data ?? {};
  const appOf = (deployment: Manifest) => deployment.metadata.labels?.['app.kubernetes.io/name'];

  it('is off by default: the TLS variables are empty and no certificate is mounted', () => {
    const manifests = renderChart(valuesSets['default']);
    for (const deployment of deploymentsOf(manifests)) {
      const config = configOf(manifests, deployment);
      expect({ app: appOf(deployment), cert: config['TLS_CERT_FILE'], key: config['TLS_KEY_FILE'] }).toEqual({ app: appOf(deployment), cert: '', key: '' });
      expect(volumesOf(deployment).map((volume) => volume.name)).not.toContain('tls');
    }
  });

  it('mounts the certificate Secrets by reference and points the variables at the mounted files (production values)', () => {
    const manifests = renderChart(valuesSets['production']);
    for (const deployment of deploymentsOf(manifests)) {
      const app = appOf(deployment);
      const config = configOf(manifests, deployment);
      const container = containerOf(deployment);
      const tlsVolume = volumesOf(deployment).find((volume) => volume.name === 'tls');
      // The ingestor has its own certificate (the stations' name); the others share the internal one.
      expect(tlsVolume?.secret).toEqual({
        secretName: app === 'ingestor' ? 'tollstream-ingestor-tls' : 'tollstream-internal-tls',
        items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }],
      });
      // A directory mount, never subPath: Kubernetes only refreshes a renewed Secret in directory mounts.
      const mount = container.volumeMounts?.find((entry) => entry.name === 'tls') as { mountPath: string; subPath?: string; readOnly?: boolean };
      expect(mount).toEqual({ name: 'tls', mountPath: '/var/run/secrets/tollstream/tls', readOnly: true });
      expect(config['TLS_CERT_FILE']).toBe(`${mount.mountPath}/tls.crt`);
      expect(config['TLS_KEY_FILE']).toBe(`${mount.mountPath}/tls.key`);
      expect(config['TLS_RELOAD_INTERVAL']).toBe('1m');
      expect(config['TLS_OPS_HTTP']).toBe('true');
    }
    const ingestor = deploymentsOf(manifests).find((deployment) => appOf(deployment) === 'ingestor') as Manifest;
    expect(volumesOf(ingestor).find((volume) => volume.name === 'tls-client-ca')?.secret).toEqual({ secretName: 'tollstream-station-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    expect(configOf(manifests, ingestor)['TLS_CLIENT_CA_FILE']).toBe('/var/run/secrets/tollstream/tls-client-ca/ca.crt');
    const notifier = deploymentsOf(manifests).find((deployment) => appOf(deployment) === 'notifier') as Manifest;
    expect(configOf(manifests, notifier)['TLS_CLIENT_CA_FILE']).toBe('');
    // No certificate or key material in any rendered object: only Secret names.
    expect(JSON.stringify(manifests)).not.toMatch(/BEGIN (CERTIFICATE|PRIVATE KEY)/);
  });

  it('scrapes over HTTPS with the configured tlsConfig when the ops port serves TLS', () => {
    const monitors = renderChart(valuesSets['production']).filter((m) => m.kind === 'ServiceMonitor');
    expect(monitors.length).toBeGreaterThan(0);
    for (const monitor of monitors) {
      expect((monitor.spec as { endpoints: unknown[] }).endpoints).toEqual([
        expect.objectContaining({ port: 'http', scheme: 'https', tlsConfig: { ca: { secret: { name: 'tollstream-internal-tls', key: 'ca.crt' } }, serverName: 'tollstream-metrics.tolls.svc' } }),
      ]);
    }
    const plainOps = renderChart([...valuesSets['production'], '--set', 'tls.opsHttp=false']);
    for (const monitor of plainOps.filter((m) => m.kind === 'ServiceMonitor')) expect((monitor.spec as { endpoints: Array<{ scheme?: string }> }).endpoints[0].scheme).toBeUndefined();
    for (const deployment of deploymentsOf(plainOps)) {
      expect(containerOf(deployment).readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http', scheme: 'HTTP' });
      expect(configOf(plainOps, deployment)['TLS_OPS_HTTP']).toBe('false');
    }
  });

  it('explains settings that cannot work', () => {
    const failure = (...set: string[]) => {
      const result = helm(['template', 'ci', chartDir, ...set.flatMap((value) => ['--set', value])]);
      expect(result.status).not.toBe(0);
      return result.stderr;
    };
    expect(failure('tls.enabled=true')).toContain('tls.enabled: set tls.secretName or services.billing-threshold.tls.secretName to an existing kubernetes.io/tls Secret');
    expect(failure('tls.enabled=true', 'tls.secretName=t', 'services.windower.tls.clientCaSecret.name=ca', 'services.windower.tls.clientCaSecret.key=ca.crt')).toContain(
      'services.windower.tls.clientCaSecret: mutual TLS is for gRPC ports and windower has none',
    );
    expect(failure('services.ingestor.tls.clientCaSecret.name=station-ca')).toContain('services.ingestor.tls.clientCaSecret: mutual TLS needs tls.enabled');
    expect(failure('tls.reloadInterval=soon')).toContain('/tls/reloadInterval');
  });
});
