// The NATS values the chart's documentation hands to the official nats chart (ADR 0014): a 3-node
// JetStream cluster that writes to disk before it acknowledges, and the chart README showing the same.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { chartDir } from './render';

interface NatsChartValues {
  config?: {
    cluster?: { enabled?: boolean; replicas?: number };
    jetstream?: { enabled?: boolean; merge?: Record<string, unknown> };
  };
}

describe('examples/nats-values.yaml', () => {
  const values = parse(readFileSync(join(chartDir, 'examples', 'nats-values.yaml'), 'utf8')) as NatsChartValues;

  it('is a 3-node JetStream cluster with fsync before every acknowledgement', () => {
    expect(values.config?.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(values.config?.jetstream?.enabled).toBe(true);
    expect(values.config?.jetstream?.merge?.['sync_interval']).toBe('always');
  });

  it('is what the chart README shows', () => {
    const readme = readFileSync(join(chartDir, 'README.md'), 'utf8');
    expect(readme).toContain('examples/nats-values.yaml');
    expect(readme).toMatch(/merge: \{ sync_interval: always \}/);
  });
});
