/**
 * `mics plan`: the partition size a job needs, its memory per GPU, the predicted
 * step, and how to launch it. Shared option handling for `mics simulate` too.
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { invalidArgument } from '../core/errors';
import {
  ATTENTION_KERNELS,
  clusterFromJson,
  clusterPreset,
  customModel,
  formatCount,
  modelPreset,
  parameterCount,
  planTraining,
  type ClusterPreset,
  type MemoryBreakdown,
  type ModelFamily,
  type ModelSpec,
  type StepPrediction,
  type TrainingOptions,
  type TrainingPlan,
} from '../plan';

/** Raw commander values. */
export type RawOptions = Record<string, string | boolean | undefined>;

const GiB = 1024 ** 3;

/** Options every planning command takes: model, cluster, training setup. */
export function trainingOptions(command: Command): Command {
  return command
    .option('--model <name>', 'model preset (bert-10b, gpt-100b, gpt3-175b, llama-70b, ...), an alias (100b, 175b) or a parameter count (13b)')
    .option('--layers <n>', 'custom model: transformer layers (with --hidden and --heads)')
    .option('--hidden <n>', 'custom model: hidden size')
    .option('--heads <n>', 'custom model: attention heads')
    .option('--ffn <n>', 'custom model: MLP inner size (default 4 x hidden)')
    .option('--vocab <n>', 'custom model: vocabulary size')
    .option('--family <name>', 'custom model: gpt, bert or llama', 'gpt')
    .option('--cluster <name>', 'cluster preset: p3dn, p4d, p4de, p5, dgx-a100, dgx-h100, emulated, or a FILE.json', 'p4d')
    .option('--cluster-file <file>', 'a cluster described in JSON (same fields as the presets; see docs/scaling.md)')
    .option('--seq <n>', "sequence length (default: the model's)")
    .option('--micro-batch <n>', "sequences per GPU per micro-step, or 'auto' (the largest that fits)", 'auto')
    .option('--accumulation <n>', 'micro-steps per optimizer step', '1')
    .option('--partition-size <n>', 'MiCS partition size S (default: the smallest that fits)')
    .option('--accounting <kind>', "model-state bytes: 'engine' (18 B/parameter, this package) or 'paper' (16 B)", 'engine')
    .option('--reduce-dtype <dtype>', 'gradient reduction dtype: fp32 or bf16', 'fp32')
    .option('--no-recompute', 'keep all activations (no recomputation)')
    .option('--attention <kind>', "'unfused' (keeps the s x s attention scores) or 'flash' (FlashAttention / fused SDPA: keeps none)", 'unfused')
    .option('--granularity <kind>', "units: 'layer' (one per transformer layer) or 'module' (one per weight matrix)", 'layer')
    .option('--prefetch <n>', 'units prefetched ahead of the one computing', '1')
    .option('--fragmentation <f>', 'fraction of device memory kept free', '0.1')
    .option('--defer-all-reduce', 'HSDP: all-reduce across replicas only at the accumulation boundary')
    .option('--json', 'print machine-readable JSON');
}

function int(flag: string, value: string | boolean | undefined, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw invalidArgument(`${flag} ${String(value)} is not valid: use an integer >= ${min}`);
  return n;
}

function num(flag: string, value: string | boolean | undefined): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw invalidArgument(`${flag} ${String(value)} is not valid: use a number`);
  return n;
}

function oneOf<T extends string>(flag: string, value: string | boolean | undefined, valid: readonly T[]): T {
  if (!valid.includes(value as T)) throw invalidArgument(`${flag} ${String(value)} is not valid: use ${valid.join(' or ')}`);
  return value as T;
}

/** The cluster of --cluster / --cluster-file. */
export function clusterFrom(raw: RawOptions): ClusterPreset {
  const cluster = String(raw.cluster ?? 'p4d');
  // --cluster FILE.json is the same as --cluster-file FILE.json.
  const file = typeof raw.clusterFile === 'string' ? raw.clusterFile : cluster.endsWith('.json') ? cluster : undefined;
  if (file !== undefined) {
    const flag = typeof raw.clusterFile === 'string' ? '--cluster-file' : '--cluster';
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw invalidArgument(`${flag} ${file} cannot be read: ${(err as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw invalidArgument(`${flag} ${file} is not JSON: ${(err as Error).message}`);
    }
    return clusterFromJson(json, file);
  }
  return clusterPreset(cluster);
}

/** The model of --model or --layers/--hidden/--heads. */
export function modelFrom(raw: RawOptions): ModelSpec {
  if (raw.layers !== undefined || raw.hidden !== undefined || raw.heads !== undefined) {
    if (raw.model !== undefined) throw invalidArgument('give either --model or --layers/--hidden/--heads, not both');
    return customModel({
      family: String(raw.family ?? 'gpt') as ModelFamily,
      layers: int('--layers', raw.layers),
      hidden: int('--hidden', raw.hidden),
      heads: int('--heads', raw.heads),
      ...(raw.vocab !== undefined ? { vocab: int('--vocab', raw.vocab) } : {}),
      ...(raw.ffn !== undefined ? { ffn: int('--ffn', raw.ffn) } : {}),
      ...(raw.seq !== undefined ? { sequence: int('--seq', raw.seq) } : {}),
    });
  }
  if (raw.model === undefined) throw invalidArgument('--model is required (e.g. --model 100b), or describe one with --layers, --hidden and --heads');
  return modelPreset(String(raw.model));
}

/** Everything but the world size, from the shared options. */
export function trainingFrom(raw: RawOptions): TrainingOptions {
  const microBatch = raw.microBatch === undefined || raw.microBatch === 'auto' ? ('auto' as const) : int('--micro-batch', raw.microBatch);
  const fragmentation = num('--fragmentation', raw.fragmentation ?? '0.1');
  return {
    cluster: clusterFrom(raw),
    model: modelFrom(raw),
    ...(raw.seq !== undefined ? { sequence: int('--seq', raw.seq) } : {}),
    microBatch,
    accumulation: int('--accumulation', raw.accumulation ?? '1'),
    ...(raw.partitionSize !== undefined ? { partitionSize: int('--partition-size', raw.partitionSize) } : {}),
    accounting: oneOf('--accounting', raw.accounting ?? 'engine', ['engine', 'paper'] as const),
    reduceDtype: oneOf('--reduce-dtype', raw.reduceDtype ?? 'fp32', ['fp32', 'bf16'] as const),
    recompute: raw.recompute !== false,
    attention: oneOf('--attention', raw.attention ?? 'unfused', ATTENTION_KERNELS),
    granularity: oneOf('--granularity', raw.granularity ?? 'layer', ['layer', 'module'] as const),
    prefetchDepth: int('--prefetch', raw.prefetch ?? '1', 0),
    fragmentation,
    deferAllReduce: raw.deferAllReduce === true,
  };
}

const gib = (b: number): string => `${(b / GiB).toFixed(1)} GiB`;
const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB`;
const sec = (s: number): string => (s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1e3).toFixed(1)} ms`);
const pad = (s: string | number, w: number): string => String(s).padStart(w);

/** One line describing a model. */
export function describeModel(m: ModelSpec): string {
  return `${m.name} (${formatCount(parameterCount(m))} parameters, ${m.family.toUpperCase()} ${m.layers} x ${m.hidden}, ${m.heads} heads)`;
}

/** The memory table of one GPU. */
export function formatMemory(mem: MemoryBreakdown, deviceBytes: number): string[] {
  return [
    `  model states      ${pad(gib(mem.modelStates), 10)}`,
    `  gathered units    ${pad(gib(mem.gatheredUnits), 10)}`,
    `  gradient buffer   ${pad(gib(mem.gradientBuffer), 10)}`,
    `  activations       ${pad(gib(mem.activations), 10)}`,
    `  runtime           ${pad(gib(mem.runtime), 10)}`,
    `  total             ${pad(gib(mem.total), 10)}   of ${gib(mem.usable)} usable (${gib(deviceBytes)} less the fragmentation margin): ${mem.fits ? 'fits' : 'DOES NOT FIT'}`,
  ];
}

/** What a step prediction says, as lines. */
export function formatPrediction(p: StepPrediction): string[] {
  const c = p.comm;
  return [
    `  step time         ${sec(p.stepTime)} (compute ${sec(p.computeTime)}, exposed communication ${sec(p.exposedCommTime)}, boundary ${sec(p.boundaryTime)})`,
    `  TFLOPS per GPU    ${p.tflopsPerGpu.toFixed(1)} executed (recomputation included), ${p.modelTflopsPerGpu.toFixed(1)} model`,
    `  throughput        ${p.samplesPerSecond.toFixed(2)} samples/s, ${Math.round(p.tokensPerSecond)} tokens/s`,
    `  communication     all-gather ${sec(c.allGather)}, reduce-scatter ${sec(c.reduceScatter)}, all-reduce ${sec(c.allReduce)} per step (latency ${sec(c.latency)})`,
    `  bytes per step    ${gb(p.interBytesPerNode)} per node between nodes, ${gb(p.intraBytesPerGpu)} per GPU inside the node`,
  ];
}

/** The recommended launch: a hostfile or Slurm command line and the network environment. */
export interface LaunchAdvice {
  readonly commands: readonly string[];
  readonly environment: Readonly<Record<string, string>>;
  readonly notes: readonly string[];
}

/** How to start the planned job on `cluster` (not run here). */
export function launchAdvice(plan: TrainingPlan, cluster: ClusterPreset): LaunchAdvice {
  const efa = cluster.inter.name.startsWith('EFA');
  const environment: Record<string, string> = efa
    ? { FI_PROVIDER: 'efa', FI_EFA_USE_DEVICE_RDMA: '1', RDMAV_FORK_SAFE: '1', NCCL_DEBUG: 'INFO' }
    : { NCCL_DEBUG: 'INFO' };
  return {
    commands: [
      `export MICS_STORE_TOKEN=$(node -e "console.log(require('crypto').randomBytes(32).toString('hex'))")`,
      `# Slurm, one launcher per node:`,
      `srun --nodes=${plan.nodes} --ntasks-per-node=1 npx mics-launch --nproc-per-node gpu train.js`,
      `# or a hostfile of ${plan.nodes} hosts with slots=${cluster.gpusPerNode}:`,
      `npx mics-launch --hostfile hosts --master-port 29500 train.js`,
      `# in train.js: createGroups(world, { partitionSize: ${plan.partitionSize} })`,
    ],
    environment,
    notes: efa
      ? [
          'EFA needs the aws-ofi-nccl plugin on LD_LIBRARY_PATH; NCCL_DEBUG=INFO should log "NET/AWS Libfabric" (then drop it)',
          '--hostfile carries NCCL_* and MICS_* to the other hosts, not FI_* or RDMAV_*: set those in each host\'s environment or use Slurm',
        ]
      : ['--hostfile carries NCCL_* and MICS_* to the other hosts'],
  };
}

/** `mics plan` as text. */
export function formatPlan(plan: TrainingPlan, o: TrainingOptions): string {
  const c = o.cluster;
  const p = plan.prediction;
  const lines = [
    `mics plan: ${describeModel(o.model)} on ${plan.nodes} x ${c.name} (${plan.worldSize} x ${c.device.name})`,
    `  model shape: ${o.model.source}`,
    `  sequence ${plan.sequence}, accounting ${o.accounting ?? 'engine'} (${o.accounting === 'paper' ? '16' : '18'} B/parameter of model states), ` +
      `recomputation ${o.recompute === false ? 'off' : 'on'}, attention ${o.attention ?? 'unfused'}, units per ${o.granularity === 'module' ? 'weight matrix' : 'layer'}`,
    '',
    `partition size S = ${plan.partitionSize}, ${plan.replicationSize} replicas${plan.hierarchical ? `, hierarchical all-gather and reduce-scatter (${plan.partitionSize / c.gpusPerNode} nodes x ${c.gpusPerNode} GPUs per group)` : ''}`,
    `  ${plan.reason}`,
    `  ${pad('S', 5)}  ${pad('per GPU', 10)}  why`,
    ...plan.candidates.map((k) => `  ${pad(k.partitionSize, 5)}  ${pad(gib(k.requiredBytes), 10)}  ${k.reason}${k.straddlesNodes ? ' (groups straddle nodes)' : ''}`),
    '',
    `micro-batch ${plan.microBatch}${o.microBatch === 'auto' || o.microBatch === undefined ? ' (the largest that fits)' : ''}, largest that fits: ${plan.maxFittingMicroBatch}, ` +
      `accumulation ${p.accumulation}, global batch ${plan.worldSize * plan.microBatch * p.accumulation} sequences`,
    `memory per GPU (S = ${plan.partitionSize}, micro-batch ${plan.microBatch}):`,
    ...formatMemory(p.memory, c.device.memoryBytes),
    '',
    'predicted step (MiCS, this package\'s schedule):',
    ...formatPrediction(p),
  ];
  if (plan.alternatives.length) {
    lines.push('', 'larger partition sizes (more room for activations):', `  ${pad('S', 5)} ${pad('micro-batch', 11)} ${pad('step', 10)} ${pad('TFLOPS', 7)} ${pad('samples/s', 10)}`);
    for (const a of plan.alternatives) {
      lines.push(
        `  ${pad(a.partitionSize, 5)} ${pad(a.microBatch, 11)} ${pad(sec(a.prediction.stepTime), 10)} ${pad(a.prediction.tflopsPerGpu.toFixed(1), 7)} ${pad(a.prediction.samplesPerSecond.toFixed(2), 10)}${a.fastest ? '  fastest' : ''}`,
      );
    }
  }
  const launch = launchAdvice(plan, c);
  lines.push('', `launch (not run here; see docs/launch.md, "Running on p4d"):`, ...launch.commands.map((l) => `  ${l}`));
  lines.push(`  environment: ${Object.entries(launch.environment).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  lines.push(...launch.notes.map((n) => `  note: ${n}`));
  return lines.join('\n');
}

export function addPlanCommands(program: Command): void {
  trainingOptions(
    program
      .command('plan')
      .description('choose the partition size for a model on a cluster, show memory per GPU and the predicted step')
      .option('--nodes <n>', 'nodes in the job', '1'),
  ).action((raw: RawOptions) => {
    const o = trainingFrom(raw);
    const plan = planTraining({ ...o, nodes: int('--nodes', raw.nodes ?? '1') });
    if (raw.json === true) {
      process.stdout.write(`${JSON.stringify({ model: o.model, cluster: o.cluster.name, ...plan, launch: launchAdvice(plan, o.cluster) }, null, 2)}\n`);
    } else {
      process.stdout.write(`${formatPlan(plan, o)}\n`);
    }
  });
}
