/**
 * The machine's limit (issue 15): each stage's CPU per record measured alone (its own phase of the
 * same run), summed; the rate the machine's cores could carry at that cost; the pipeline's highest
 * sustained rate as a share of it; and the next limit (the process that spent the most CPU per record
 * in the pipeline's highest sustained step). Pure: takes the phases' figures, no I/O.
 */

/** A stage's CPU per record, measured in its own phase (the process alone on a pre-filled stream or at saturation). */
export interface StageAlone {
  /** The pipeline's process name of the stage (the key of the pipeline's per-process figures). */
  stage: string;
  microsecondsPerRecord: number;
  /** nats-server's CPU per record in the same phase, when the phase measured it. */
  natsServerMicrosecondsPerRecord?: number;
  /** What was counted as a record in that phase, when it is not a transaction. */
  note?: string;
}

/** The pipeline step figures the block reads (PipelineStep satisfies it). */
export interface PipelineStepCpu {
  offeredRecordsPerSecond: number;
  acknowledgedRecordsPerSecond: number;
  /** Records per SubmitTransactions call of the load generator (the ingestor's cost per record depends on it). */
  batchSize?: number;
  /** Spend window results applied by billing per second (checks "per window result ≈ per record"). */
  billingResultsAppliedPerSecond?: number;
  processes: Record<string, { cpuCores: number; cpuMicrosecondsPerRecord?: number }>;
}

export interface MachineLimitInput {
  cores: number;
  /** The stages measured alone in this run. */
  stages: StageAlone[];
  /** The stages the sum needs (a missing one makes the limit an overstatement). */
  expectedStages: string[];
  /** Absent: the pipeline phase did not run. */
  pipeline?: { highestSustainedRecordsPerSecond?: number; atHighestSustained?: PipelineStepCpu };
  /** Processes of the pipeline that are not part of the platform (the load generator). */
  notPipeline: string[];
}

export interface ProcessCost {
  process: string;
  microsecondsPerRecord: number;
}

export interface MachineLimit {
  cores: number;
  stagesAlone: StageAlone[];
  /** Stages the sum needs but this run did not measure alone: the sum is low and the limit high by their cost. */
  missingStages: string[];
  sumMicrosecondsPerRecord: number;
  /** cores × 1e6 / sum (records/s). */
  limitRecordsPerSecond: number;
  /** The same with nats-server's CPU per record of every stage phase added (only when each stage phase measured it). */
  withNatsServer?: { sumMicrosecondsPerRecord: number; limitRecordsPerSecond: number; share?: number };
  /** Absent when the pipeline phase did not run. */
  pipeline?: {
    /** Absent when no step of the pipeline was sustained. */
    highestSustainedRecordsPerSecond?: number;
    /** Records per SubmitTransactions call in that step. */
    batchSize?: number;
    share?: number;
    target: number;
    meetsTarget?: boolean;
    /** CPU per record of every process in the highest sustained step, largest first (the load generator apart). */
    perProcess: ProcessCost[];
    /** The platform process with the largest CPU per record in the highest sustained step. */
    nextLimit?: ProcessCost;
    notPipeline: ProcessCost[];
    /** Stages the pipeline runs that were not measured alone (not in the sum), with their cost in the pipeline. */
    notMeasuredAlone: ProcessCost[];
    /** Window results billing applied per record acknowledged in that step (billing's figure alone is per result). */
    billingResultsPerRecord?: number;
  };
}

export const SHARE_TARGET = 0.6;

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/** CPU per record (µs) from CPU seconds and the records processed in the same interval; undefined when either is unknown or zero. */
export function microsecondsPerRecord(cpuSeconds: number | undefined, records: number): number | undefined {
  if (cpuSeconds === undefined || !Number.isFinite(cpuSeconds) || cpuSeconds < 0 || !(records > 0)) return undefined;
  return round((cpuSeconds * 1e6) / records, 2);
}

/** A process's CPU per record in a pipeline step: cores used / records acknowledged per second. */
export function stepMicrosecondsPerRecord(cpuCores: number, acknowledgedRecordsPerSecond: number): number | undefined {
  return microsecondsPerRecord(cpuCores, acknowledgedRecordsPerSecond);
}

function limitOf(cores: number, sum: number): number {
  return sum > 0 ? Math.round((cores * 1e6) / sum) : Number.POSITIVE_INFINITY;
}

export function machineLimit(input: MachineLimitInput): MachineLimit {
  if (!(input.cores > 0)) throw new Error(`machine limit: cores must be positive, got ${input.cores}`);
  const measured = new Set(input.stages.map((stage) => stage.stage));
  const missingStages = input.expectedStages.filter((stage) => !measured.has(stage));
  const sum = round(
    input.stages.reduce((total, stage) => total + stage.microsecondsPerRecord, 0),
    2,
  );
  const limit = limitOf(input.cores, sum);
  const block: MachineLimit = { cores: input.cores, stagesAlone: input.stages, missingStages, sumMicrosecondsPerRecord: sum, limitRecordsPerSecond: limit };

  const sustained = input.pipeline?.highestSustainedRecordsPerSecond;
  const shareOf = (limitRecordsPerSecond: number) => (sustained === undefined ? undefined : round(sustained / limitRecordsPerSecond, 2));
  if (input.stages.length > 0 && input.stages.every((stage) => stage.natsServerMicrosecondsPerRecord !== undefined)) {
    const withNats = round(sum + input.stages.reduce((total, stage) => total + (stage.natsServerMicrosecondsPerRecord ?? 0), 0), 2);
    const limitWithNats = limitOf(input.cores, withNats);
    block.withNatsServer = { sumMicrosecondsPerRecord: withNats, limitRecordsPerSecond: limitWithNats, share: shareOf(limitWithNats) };
  }

  if (input.pipeline) {
    const step = input.pipeline.atHighestSustained;
    const costs: ProcessCost[] = [];
    if (sustained !== undefined && step) {
      for (const [process, figures] of Object.entries(step.processes)) {
        const cost = figures.cpuMicrosecondsPerRecord ?? stepMicrosecondsPerRecord(figures.cpuCores, step.acknowledgedRecordsPerSecond);
        if (cost !== undefined) costs.push({ process, microsecondsPerRecord: cost });
      }
      costs.sort((a, b) => b.microsecondsPerRecord - a.microsecondsPerRecord);
    }
    const platform = costs.filter((cost) => !input.notPipeline.includes(cost.process));
    const share = shareOf(limit);
    block.pipeline = {
      highestSustainedRecordsPerSecond: sustained,
      batchSize: sustained === undefined ? undefined : step?.batchSize,
      share,
      target: SHARE_TARGET,
      meetsTarget: share === undefined ? undefined : share >= SHARE_TARGET,
      perProcess: platform,
      nextLimit: platform[0],
      notPipeline: costs.filter((cost) => input.notPipeline.includes(cost.process)),
      notMeasuredAlone: platform.filter((cost) => cost.process !== 'nats-server' && !measured.has(cost.process)),
      billingResultsPerRecord:
        sustained !== undefined && step?.billingResultsAppliedPerSecond !== undefined && step.acknowledgedRecordsPerSecond > 0
          ? round(step.billingResultsAppliedPerSecond / step.acknowledgedRecordsPerSecond, 2)
          : undefined,
    };
  }
  return block;
}

/** The block as lines of text for the console. */
export function machineLimitLines(block: MachineLimit): string[] {
  const number = (value: number) => (Number.isFinite(value) ? value.toLocaleString('en-US') : '∞');
  const lines = [`Machine limit (${block.cores} cores; each stage's CPU per record measured alone in its own phase of this run)`];
  for (const stage of block.stagesAlone) {
    const nats = stage.natsServerMicrosecondsPerRecord === undefined ? '' : `; nats-server beside it ${stage.natsServerMicrosecondsPerRecord} µs/record`;
    lines.push(`  ${stage.stage}: ${stage.microsecondsPerRecord} µs/record${nats}${stage.note ? ` (${stage.note})` : ''}`);
  }
  if (block.missingStages.length > 0) lines.push(`  NOT measured alone in this run: ${block.missingStages.join(', ')}: the sum below is low and the limit high by their cost`);
  lines.push(`  sum ${block.sumMicrosecondsPerRecord} µs/record → machine limit ${block.cores} × 1e6 / sum = ${number(block.limitRecordsPerSecond)} records/s`);
  if (block.withNatsServer) {
    lines.push(
      `  with nats-server's CPU per record of each phase added: sum ${block.withNatsServer.sumMicrosecondsPerRecord} µs/record → ${number(block.withNatsServer.limitRecordsPerSecond)} records/s` +
        (block.withNatsServer.share === undefined ? '' : `, share ${block.withNatsServer.share}`),
    );
  }
  const pipeline = block.pipeline;
  if (!pipeline) {
    lines.push('  pipeline: not run (add pipeline to --only for the share and the next limit)');
    return lines;
  }
  if (pipeline.highestSustainedRecordsPerSecond === undefined) {
    lines.push('  pipeline: NO step was sustained: no share and no next limit can be given from this run');
    return lines;
  }
  lines.push(
    `  pipeline highest sustained ${number(pipeline.highestSustainedRecordsPerSecond)} records/s${pipeline.batchSize === undefined ? '' : ` (batches of ${pipeline.batchSize})`} → share of the limit ${pipeline.share} ` +
      `(target ≥ ${pipeline.target}: ${pipeline.meetsTarget ? 'met' : 'NOT met'})`,
  );
  // A process's fixed cost per second (timers, metrics, flushes) is spread over fewer records at a low rate.
  lines.push(
    `  CPU per record in that step (cores / acknowledged records/s; fixed per-second costs weigh more at low rates): ` +
      `${pipeline.perProcess.map((cost) => `${cost.process} ${cost.microsecondsPerRecord}`).join(', ')} µs/record`,
  );
  if (pipeline.billingResultsPerRecord !== undefined) lines.push(`  billing applied ${pipeline.billingResultsPerRecord} window results per record in that step`);
  if (pipeline.notPipeline.length > 0) lines.push(`  (not part of the platform: ${pipeline.notPipeline.map((cost) => `${cost.process} ${cost.microsecondsPerRecord} µs/record`).join(', ')})`);
  if (pipeline.notMeasuredAlone.length > 0) lines.push(`  in the pipeline but not in the sum (no phase measures them alone): ${pipeline.notMeasuredAlone.map((cost) => cost.process).join(', ')}`);
  if (pipeline.nextLimit) lines.push(`  next limit: ${pipeline.nextLimit.process} (${pipeline.nextLimit.microsecondsPerRecord} µs/record in the pipeline, the largest)`);
  return lines;
}
