import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { localMemoryBudget, repositoryRoot } from './services';

describe('the local memory budget (deploy/local/memory.json, used by npm start and the pipeline bench)', () => {
  const budget = localMemoryBudget();
  const apps = readdirSync(join(repositoryRoot, 'apps'));

  it('bounds the heap of every service and the simulator, and names only apps that exist', () => {
    for (const app of ['ingestor', 'windower', 'billing-threshold', 'traffic-anomaly', 'warehouse-loader', 'notifier', 'simulator']) {
      expect({ app, flags: budget.nodeOptions[app] }).toEqual({ app, flags: expect.stringMatching(/--max-old-space-size=\d+/) });
    }
    expect(Object.keys(budget.nodeOptions).filter((app) => !apps.includes(app))).toEqual([]);
  });

  it("gives nats-server a Go memory limit in GOMEMLIMIT's syntax", () => {
    expect(budget.natsServerGoMemoryLimit).toMatch(/^\d+(KiB|MiB|GiB)$/);
  });
});
