/**
 * The golden end-to-end scenario: all six services as separate processes on a real nats-server;
 * exact results computed independently from the generated records (see scenario.ts).
 */
import { startPipeline, type Pipeline } from './pipeline';
import { runScenario } from './run-scenario';
import { generateScenario } from './scenario';

let pipeline: Pipeline | undefined;
afterAll(async () => {
  await pipeline?.close();
}, 60_000);

it('golden scenario: exact spend, alerts, inboxes, warehouse rows and dead letters', async () => {
  const deadlineMs = Date.now() + 220_000;
  pipeline = await startPipeline('e2e-golden');
  const scenario = generateScenario({ seed: 20261123, nowMs: Date.now(), liveSeconds: 10, liveRecordsPerSecond: 500, fillerPerStation: 300 });
  const report = await runScenario(pipeline, scenario, { crash: [], deadlineMs });
  expect(report.problems).toEqual([]);
  expect(report.acceptedCount).toBeGreaterThan(5_000);
}, 240_000);
