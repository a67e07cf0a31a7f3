import { machineLimit, machineLimitLines, microsecondsPerRecord, stepMicrosecondsPerRecord, type MachineLimitInput, type PipelineStepCpu } from './machine-limit';
import { parseOnly, phaseRuns } from './phases';

const EXPECTED = ['ingestor', 'windower', 'warehouse-loader', 'billing-threshold'];
const LOAD_GENERATOR = 'bench (load generator)';

const stagesAlone = [
  { stage: 'ingestor', microsecondsPerRecord: 10, natsServerMicrosecondsPerRecord: 4 },
  { stage: 'windower', microsecondsPerRecord: 5, natsServerMicrosecondsPerRecord: 1 },
  { stage: 'warehouse-loader', microsecondsPerRecord: 3, natsServerMicrosecondsPerRecord: 1 },
  { stage: 'billing-threshold', microsecondsPerRecord: 2, natsServerMicrosecondsPerRecord: 2 },
];

// 8,000 records/s acknowledged: 0.12 cores = 15 µs/record, 0.08 = 10, ...
const step: PipelineStepCpu = {
  offeredRecordsPerSecond: 8_000,
  acknowledgedRecordsPerSecond: 8_000,
  batchSize: 100,
  billingResultsAppliedPerSecond: 6_800,
  processes: {
    ingestor: { cpuCores: 0.08 },
    windower: { cpuCores: 0.04 },
    'billing-threshold': { cpuCores: 0.02 },
    'traffic-anomaly': { cpuCores: 0.01 },
    'warehouse-loader': { cpuCores: 0.03 },
    notifier: { cpuCores: 0.004 },
    'nats-server': { cpuCores: 0.12 },
    [LOAD_GENERATOR]: { cpuCores: 0.2 },
  },
};

const input = (overrides: Partial<MachineLimitInput> = {}): MachineLimitInput => ({
  cores: 2,
  stages: stagesAlone,
  expectedStages: EXPECTED,
  pipeline: { highestSustainedRecordsPerSecond: 8_000, atHighestSustained: step },
  notPipeline: [LOAD_GENERATOR],
  ...overrides,
});

describe('CPU per record', () => {
  it('is CPU seconds × 1e6 / records', () => {
    expect(microsecondsPerRecord(1.5, 100_000)).toBe(15);
    expect(stepMicrosecondsPerRecord(0.5, 50_000)).toBe(10);
  });

  it('is unknown without records or a CPU reading', () => {
    expect(microsecondsPerRecord(1, 0)).toBeUndefined();
    expect(microsecondsPerRecord(undefined, 1_000)).toBeUndefined();
    expect(microsecondsPerRecord(Number.NaN, 1_000)).toBeUndefined();
    expect(stepMicrosecondsPerRecord(0.5, 0)).toBeUndefined();
  });
});

describe('machineLimit', () => {
  it('sums the stages alone and divides the cores by the sum', () => {
    const block = machineLimit(input());
    expect(block.sumMicrosecondsPerRecord).toBe(20);
    expect(block.limitRecordsPerSecond).toBe(100_000); // 2 × 1e6 / 20
    expect(block.missingStages).toEqual([]);
    expect(block.pipeline?.highestSustainedRecordsPerSecond).toBe(8_000);
    expect(block.pipeline?.share).toBe(0.08);
    expect(block.pipeline?.meetsTarget).toBe(false);
  });

  it('adds nats-server beside each stage when every phase measured it', () => {
    const block = machineLimit(input());
    expect(block.withNatsServer).toEqual({ sumMicrosecondsPerRecord: 28, limitRecordsPerSecond: 71_429, share: 0.11 });
    const oneUnmeasured = machineLimit(input({ stages: [...stagesAlone.slice(1), { stage: 'ingestor', microsecondsPerRecord: 10 }] }));
    expect(oneUnmeasured.withNatsServer).toBeUndefined();
  });

  it('names the platform process with the largest CPU per record in the highest sustained step, the load generator apart', () => {
    const pipeline = machineLimit(input()).pipeline;
    expect(pipeline?.nextLimit).toEqual({ process: 'nats-server', microsecondsPerRecord: 15 });
    expect(pipeline?.perProcess.map((cost) => cost.process)).toEqual(['nats-server', 'ingestor', 'windower', 'warehouse-loader', 'billing-threshold', 'traffic-anomaly', 'notifier']);
    expect(pipeline?.notPipeline).toEqual([{ process: LOAD_GENERATOR, microsecondsPerRecord: 25 }]);
    expect(pipeline?.notMeasuredAlone.map((cost) => cost.process)).toEqual(['traffic-anomaly', 'notifier']);
  });

  it('gives the window results billing applied per record in that step', () => {
    expect(machineLimit(input()).pipeline?.billingResultsPerRecord).toBe(0.85);
    expect(machineLimitLines(machineLimit(input())).join('\n')).toContain('billing applied 0.85 window results per record');
  });

  it('prefers the step’s own CPU per record when the step carries it', () => {
    const withOwn: PipelineStepCpu = { ...step, processes: { ...step.processes, windower: { cpuCores: 0.04, cpuMicrosecondsPerRecord: 40 } } };
    const block = machineLimit(input({ pipeline: { highestSustainedRecordsPerSecond: 8_000, atHighestSustained: withOwn } }));
    expect(block.pipeline?.nextLimit).toEqual({ process: 'windower', microsecondsPerRecord: 40 });
  });

  it('meets the target at a share of 0.6 or more', () => {
    const block = machineLimit(input({ pipeline: { highestSustainedRecordsPerSecond: 60_000, atHighestSustained: { ...step, offeredRecordsPerSecond: 60_000, acknowledgedRecordsPerSecond: 60_000 } } }));
    expect(block.pipeline?.share).toBe(0.6);
    expect(block.pipeline?.meetsTarget).toBe(true);
  });

  it('says so when the pipeline had no sustained step', () => {
    const block = machineLimit(input({ pipeline: { highestSustainedRecordsPerSecond: undefined, atHighestSustained: undefined } }));
    expect(block.pipeline?.share).toBeUndefined();
    expect(block.pipeline?.meetsTarget).toBeUndefined();
    expect(block.pipeline?.nextLimit).toBeUndefined();
    expect(block.limitRecordsPerSecond).toBe(100_000);
    expect(machineLimitLines(block).join('\n')).toContain('NO step was sustained');
  });

  it('lists the stages not measured alone (the limit is then an overstatement)', () => {
    const block = machineLimit(input({ stages: stagesAlone.slice(0, 2) }));
    expect(block.missingStages).toEqual(['warehouse-loader', 'billing-threshold']);
    expect(block.sumMicrosecondsPerRecord).toBe(15);
    expect(machineLimitLines(block).join('\n')).toContain('NOT measured alone in this run: warehouse-loader, billing-threshold');
  });

  it('reports no share without the pipeline phase', () => {
    const block = machineLimit(input({ pipeline: undefined }));
    expect(block.pipeline).toBeUndefined();
    expect(machineLimitLines(block).join('\n')).toContain('pipeline: not run');
  });

  it('prints the sum, the limit, the share and the next limit', () => {
    const text = machineLimitLines(machineLimit(input())).join('\n');
    expect(text).toContain('sum 20 µs/record → machine limit 2 × 1e6 / sum = 100,000 records/s');
    expect(text).toContain('highest sustained 8,000 records/s (batches of 100) → share of the limit 0.08 (target ≥ 0.6: NOT met)');
    expect(text).toContain('next limit: nats-server (15 µs/record');
  });

  it('refuses a machine without cores', () => {
    expect(() => machineLimit(input({ cores: 0 }))).toThrow('cores must be positive');
  });
});

describe('--only', () => {
  it('takes one phase or a comma-separated list', () => {
    expect(parseOnly(undefined)).toBeUndefined();
    expect(parseOnly('billing')).toEqual(['billing']);
    expect(parseOnly('ingest, windower,warehouse,billing,pipeline')).toEqual(['ingest', 'windower', 'warehouse', 'billing', 'pipeline']);
  });

  it('runs ingest-durability only when named', () => {
    expect(parseOnly('ingest-durability')).toEqual(['ingest-durability']);
    expect(phaseRuns(undefined, 'ingest-durability')).toBe(false);
    expect(phaseRuns(undefined, 'pipeline')).toBe(true);
    expect(phaseRuns(['ingest-durability'], 'ingest-durability')).toBe(true);
    expect(phaseRuns(['ingest-durability'], 'ingest')).toBe(false);
  });

  it('names an unknown phase', () => {
    expect(() => parseOnly('ingest,biling')).toThrow('unknown phase "biling"');
    expect(() => parseOnly('')).toThrow('unknown phase ""');
  });
});
