import { collectDefaultMetrics, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * A registry per service (not prom-client's global one, so tests and several servers in one
 * process do not collide), with the standard process_* and nodejs_* metrics and service=<name> on every series.
 * Register your own metrics with `registers: [registry]`.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
