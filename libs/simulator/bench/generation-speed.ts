// Generation speed outside jest (whose sandbox slows object and Date creation several times):
// `npx tsx libs/simulator/bench/generation-speed.ts [recordsPerSecond] [stations]`; prints JSON.
import { buildTrafficModel, TrafficGenerator } from '../src/index';

const rate = Number(process.argv[2] ?? 100_000);
const stations = Number(process.argv[3] ?? 100);
const start = Date.UTC(2026, 10, 18, 12);
const generator = new TrafficGenerator(buildTrafficModel({ seed: 'speed', stations, accounts: 10_000 }), { recordsPerSecond: rate, pattern: 'realistic' });
generator.generate(start, start + 1000);
let best = 0;
let records = 0;
let cpuSeconds = 0;
// One second of event time per call and nothing kept, as a live run does; CPU time because the machine is shared.
for (let second = 1; second <= 20; second++) {
  const before = process.cpuUsage();
  const count = generator.generate(start + second * 1000, start + (second + 1) * 1000).reduce((sum, batch) => sum + batch.transactions.length, 0);
  const used = process.cpuUsage(before);
  const seconds = (used.user + used.system) / 1e6;
  best = Math.max(best, count / seconds);
  records += count;
  cpuSeconds += seconds;
}
process.stdout.write(`${JSON.stringify({ records, cpuSeconds: Number(cpuSeconds.toFixed(3)), recordsPerCpuSecond: Math.round(records / cpuSeconds), bestRecordsPerCpuSecond: Math.round(best) })}\n`);
