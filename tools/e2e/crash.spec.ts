/**
 * Crash test: during a sustained, rate-limited run every service in turn is SIGKILLed and
 * restarted (waiting for "ready"), then nats-server is restarted (same port and store dir);
 * afterwards the same exact results as the golden scenario hold: nothing lost, nothing counted
 * twice, no alert repeated.
 */
import { SERVICES, startPipeline, type Pipeline } from './pipeline';
import { runScenario } from './run-scenario';
import { generateScenario } from './scenario';

let pipeline: Pipeline | undefined;
afterAll(async () => {
  await pipeline?.close();
}, 60_000);

it('crash test: SIGKILL + restart of each service in turn, then a nats-server restart, change no result', async () => {
  const deadlineMs = Date.now() + 200_000;
  pipeline = await startPipeline('e2e-crash');
  const scenario = generateScenario({ seed: 7_20261123, nowMs: Date.now(), liveSeconds: 50, liveRecordsPerSecond: 1_500, fillerPerStation: 300 });
  const report = await runScenario(pipeline, scenario, { crash: [...SERVICES, 'nats-server'], deadlineMs });
  expect(report.crashes.map((crash) => crash.target)).toEqual([...SERVICES, 'nats-server']);
  // The first crashes happen while records stream in (on a slow machine the last ones may come after).
  expect(report.crashes.slice(0, 3).every((crash) => crash.whileSending)).toBe(true);
  expect(report.problems).toEqual([]);
}, 300_000);
