// deploy/docker cannot be built or run here (no Docker engine in CI): checked statically. The Dockerfile
// builds any app named by its APP build argument into a non-root image with production dependencies only;
// the compose file parses and sets only variables the services' config schemas accept.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { acceptedEnvNames, serviceApps, workspaceRoot } from './render';

const dockerDir = join(workspaceRoot, 'deploy', 'docker');
const dockerfile = readFileSync(join(dockerDir, 'Dockerfile'), 'utf8');

interface ComposeService {
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  environment?: Record<string, string>;
  secrets?: string[];
}
const compose = parse(readFileSync(join(dockerDir, 'compose.yaml'), 'utf8'), { merge: true, uniqueKeys: true }) as {
  services: Record<string, ComposeService>;
  secrets: Record<string, { file: string }>;
};

describe('Dockerfile', () => {
  it('takes the app as build argument, builds it with Nx, installs production dependencies only', () => {
    expect(dockerfile).toMatch(/^ARG APP$/m);
    expect(dockerfile).toContain('npx nx run "${APP}:build"');
    expect(dockerfile).toContain('npm ci --omit=dev');
  });

  it('runs the bundle that the apps build (esbuild, cjs) as a non-root user', () => {
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(runtime).toMatch(/^USER 10001:10001$/m);
    expect(runtime).toMatch(/ENTRYPOINT \["node", "--enable-source-maps", ("--[a-z-]+=\d+", )*"\/app\/main.cjs"\]/);
    for (const app of [...serviceApps(), 'cli']) {
      const build = (JSON.parse(readFileSync(join(workspaceRoot, 'apps', app, 'project.json'), 'utf8')) as { targets: { build: { options: { outputPath: string; format: string[] } } } }).targets.build.options;
      expect({ app, outputPath: build.outputPath, format: build.format }).toEqual({ app, outputPath: `dist/apps/${app}`, format: ['cjs'] });
    }
  });

  it('is not fed node_modules, build output or secrets by the build context', () => {
    const ignored = readFileSync(join(workspaceRoot, '.dockerignore'), 'utf8').split('\n');
    expect(ignored).toEqual(expect.arrayContaining(['**/node_modules', 'dist', '.git', 'deploy/docker/dev-secrets']));
  });
});

describe('compose.yaml', () => {
  it('runs NATS with JetStream, a MongoDB replica set, ClickHouse, Prometheus and Grafana', () => {
    expect(compose.services['nats']).toBeDefined();
    expect(JSON.stringify(compose.services['nats'])).toContain('--jetstream');
    expect(JSON.stringify(compose.services['mongodb'])).toContain('--replSet');
    expect(compose.services['clickhouse']).toBeDefined();
    expect(compose.services['grafana']).toBeDefined();
    expect(compose.services['prometheus']).toBeDefined();
  });

  it('builds every service under apps/ (and the CLI for migrations) from the Dockerfile', () => {
    const built = Object.values(compose.services)
      .filter((service) => service.build)
      .map((service) => {
        expect(service.build?.dockerfile).toBe('deploy/docker/Dockerfile');
        const app = service.build?.args?.['APP'] as string;
        expect(existsSync(join(workspaceRoot, 'apps', app, 'project.json'))).toBe(true);
        return app;
      });
    expect(built.sort()).toEqual([...serviceApps(), 'cli'].sort());
  });

  it.each(serviceApps())('sets only variables %s accepts, and the required ones', async (app) => {
    const service = compose.services[app];
    expect(service).toBeDefined();
    const accepted = await acceptedEnvNames(app);
    const names = Object.keys(service.environment ?? {});
    expect(names.filter((name) => !accepted.includes(name))).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['NATS_URL']));
    for (const secret of service.secrets ?? []) expect(existsSync(join(dockerDir, compose.secrets[secret].file))).toBe(true);
  });

  it('mounts the Grafana provisioning and dashboards that exist', () => {
    const volumes = (compose.services['grafana'] as { volumes: string[] }).volumes;
    for (const volume of volumes) expect(existsSync(join(dockerDir, volume.split(':')[0]))).toBe(true);
  });
});
