/**
 * The planner: MiCS' scale-aware partitioning (the smallest partition group whose
 * memory holds the model states), the largest micro-batch that then fits, and the
 * predicted step; plus scaling sweeps over world sizes and strategies.
 *
 * {@link choosePartitionSize} is the pure core the engine calls for
 * `partitionSize: 'auto'` when it knows the model size; {@link planTraining} and
 * {@link simulateScaling} add the model shape, activations and the time model.
 *
 * @packageDocumentation
 */
import { describeValue, invalidArgument } from '../core/errors';
import { divisors, listSizes } from '../comm/groups';
import { PLAN_LIMITS } from './limits';
import { memoryPerGpu, paddedElements, precisionOf, unitTotals, type MemoryBreakdown, type StateAccounting, type UnitGranularity } from './memory';
import { ATTENTION_KERNELS, checkModel, formatCount, parameterCount, type AttentionKernel, type ModelSpec } from './models';
import { checkCluster, type ClusterPreset } from './presets';
import { predictStep, STRATEGIES, strategyGroups, type StepPrediction, type StepSetup, type Strategy } from './schedule';

const GiB = 1024 ** 3;

/** Input of {@link choosePartitionSize}. All sizes in bytes or elements. */
export interface PartitionChoiceInput {
  /** Parameters of the model (before padding). */
  readonly parameterCount: number;
  /** W: ranks in the job. */
  readonly worldSize: number;
  /** G: ranks per node. */
  readonly ranksPerNode: number;
  /** Memory of one device (or the share of host memory one CPU rank may use). */
  readonly deviceMemoryBytes: number;
  /** Model-state bytes per parameter before sharding; default 18 (this engine: bf16 shard, fp32 master, Adam m and v, fp32 gradient accumulator). */
  readonly stateBytesPerParameter?: number;
  /** Elements of the largest unit: (prefetchDepth + 1) gathered copies and one gradient buffer are in flight. Default 0. */
  readonly largestUnitElements?: number;
  /** Bytes per element of a gathered unit (default 2: bf16). */
  readonly gatheredBytesPerElement?: number;
  /** Bytes per element of a unit's gradient buffer (default 4: fp32). */
  readonly gradientBytesPerElement?: number;
  /** Units prefetched ahead (default 1). */
  readonly prefetchDepth?: number;
  /** Bytes per rank that do not shrink with S (activations, runtime), default 0. */
  readonly otherBytes?: number;
  /** Fraction of device memory kept free for fragmentation, default 0.1. */
  readonly fragmentation?: number;
}

/** One partition size the planner looked at. */
export interface PartitionCandidate {
  readonly partitionSize: number;
  /** Bytes per rank this size needs (model states + gathered units + gradient buffer + other). */
  readonly requiredBytes: number;
  readonly fits: boolean;
  /** Groups of S ranks that straddle node boundaries unevenly (S > G, S not a multiple of G). */
  readonly straddlesNodes: boolean;
  /** Why this size was or was not taken, in words. */
  readonly reason: string;
}

/** What {@link choosePartitionSize} decided. */
export interface PartitionChoice {
  /** S: the smallest size that fits (whole nodes preferred). */
  readonly partitionSize: number;
  /** R = W / S. */
  readonly replicationSize: number;
  /** True when the groups span whole nodes, so the all-gather runs in two stages. */
  readonly hierarchical: boolean;
  /** Bytes per rank at S, and what may be used. */
  readonly requiredBytes: number;
  readonly usableBytes: number;
  /** Every divisor of W up to the choice, with the reason it was passed over. */
  readonly candidates: readonly PartitionCandidate[];
  /** One sentence: why S. */
  readonly reason: string;
}

function positive(name: string, v: unknown, integer: boolean, max?: { value: number; what: string }): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw invalidArgument(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${describeValue(v)}`);
  }
  if (max !== undefined && v > max.value) {
    throw invalidArgument(`${name} ${v} is too large: use at most ${max.value} (${max.what})`);
  }
  return v;
}

const MAX_GPUS = { value: PLAN_LIMITS.gpus, what: 'PLAN_LIMITS.gpus = MAX_WORLD_SIZE, 2^20, the largest job mics plans' };

/**
 * The largest b in [1, cap] for which `fits(b)` holds, 0 when not even 1 fits.
 * Memory grows with the micro-batch (activations are linear in it), so `fits` holds
 * for every b up to the answer and for none above: a binary search finds it.
 */
function largestFitting(cap: number, fits: (b: number) => boolean): number {
  let lo = 0;
  let hi = Math.floor(cap);
  while (lo < hi) {
    const mid = lo + Math.ceil((hi - lo) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Bytes in the largest binary unit that keeps the figure >= 1 (models of any size read well). */
function bytes(b: number): string {
  const units = ['GiB', 'MiB', 'KiB'] as const;
  for (let i = 0; i < units.length; i++) {
    const size = GiB / 1024 ** i;
    if (b >= size) return `${(b / size).toFixed(1)} ${units[i]}`;
  }
  return `${Math.round(b)} B`;
}

/**
 * Scale-aware partitioning: the smallest S dividing W whose per-rank memory fits,
 * preferring sizes whose groups are whole nodes or lie inside one node. Pure.
 *
 * @throws a MicsError (MICS_INVALID_ARGUMENT) for bad input, and when the model
 *   fits at no S (the message gives what S = W would need and what is usable).
 */
export function choosePartitionSize(input: PartitionChoiceInput): PartitionChoice {
  if (typeof input !== 'object' || input === null) {
    throw invalidArgument(
      `choosePartitionSize: input ${describeValue(input)} is not valid: use an object {parameterCount, worldSize, ranksPerNode, deviceMemoryBytes, ...}`,
    );
  }
  const P = positive('parameterCount', input.parameterCount, false, { value: PLAN_LIMITS.parameters, what: 'PLAN_LIMITS.parameters, 1e15' });
  const W = positive('worldSize', input.worldSize, true, MAX_GPUS);
  const G = positive('ranksPerNode', input.ranksPerNode, true, MAX_GPUS);
  const memory = positive('deviceMemoryBytes', input.deviceMemoryBytes, false);
  const stateBytes = input.stateBytesPerParameter === undefined ? 18 : positive('stateBytesPerParameter', input.stateBytesPerParameter, false);
  const unit = input.largestUnitElements ?? 0;
  const depth = input.prefetchDepth ?? 1;
  const other = input.otherBytes ?? 0;
  const fragmentation = input.fragmentation ?? 0.1;
  const gatheredBytes = input.gatheredBytesPerElement === undefined ? 2 : positive('gatheredBytesPerElement', input.gatheredBytesPerElement, true);
  const gradientBytes = input.gradientBytesPerElement === undefined ? 4 : positive('gradientBytesPerElement', input.gradientBytesPerElement, true);
  if (!(unit >= 0)) throw invalidArgument(`largestUnitElements must be >= 0, got ${unit}`);
  if (!Number.isInteger(depth) || depth < 0) throw invalidArgument(`prefetchDepth must be an integer >= 0, got ${depth}`);
  if (!(other >= 0)) throw invalidArgument(`otherBytes must be >= 0, got ${other}`);
  if (!(fragmentation >= 0 && fragmentation < 1)) throw invalidArgument(`fragmentation must be a fraction in [0, 1), got ${fragmentation}`);
  const usable = memory * (1 - fragmentation);

  const evaluate = (S: number): PartitionCandidate => {
    const straddles = S > G && S % G !== 0;
    const states = (paddedElements(P, S) * stateBytes) / S;
    const units = S > 1 ? (depth + 1) * unit * gatheredBytes : 0;
    const required = states + units + unit * gradientBytes + other;
    const fits = required <= usable;
    const reason = fits
      ? `fits: ${bytes(required)} of ${bytes(usable)} usable, model states ${bytes(states)}`
      : `needs ${bytes(required)} > ${bytes(usable)} usable, model states ${bytes(states)}`;
    return { partitionSize: S, requiredBytes: required, fits, straddlesNodes: straddles, reason };
  };
  const all = divisors(W).map(evaluate);
  const preferred = all.filter((c) => !c.straddlesNodes);
  const chosen = preferred.find((c) => c.fits) ?? all.find((c) => c.fits);
  if (!chosen) {
    const last = all[all.length - 1];
    throw invalidArgument(
      `the model (${formatCount(P)} parameters, ${stateBytes} B each) fits at no partition size on ${W} ranks: ` +
        `even S = ${W} needs ${bytes(last.requiredBytes)} per rank and ${bytes(usable)} is usable; use more ranks or devices with more memory`,
    );
  }
  const S = chosen.partitionSize;
  const candidates = all
    .filter((c) => c.partitionSize <= S)
    .map((c) =>
      c.straddlesNodes && c.partitionSize !== S
        ? { ...c, reason: `${c.reason}; skipped: groups of ${c.partitionSize} straddle nodes of ${G}` }
        : c,
    );
  const hierarchical = S > G && S % G === 0 && W % G === 0;
  const smaller = candidates.filter((c) => c.partitionSize < S && !c.fits);
  const reason =
    `S = ${S}: the smallest partition size whose model states fit (${chosen.reason.replace(/^fits: /, '')})` +
    (smaller.length ? `; S = ${smaller[smaller.length - 1].partitionSize} ${smaller[smaller.length - 1].reason}` : '') +
    (hierarchical ? `; groups span ${S / G} whole nodes, so the all-gather and the reduce-scatter are hierarchical` : S <= G ? '; groups stay inside one node' : '');
  return {
    partitionSize: S,
    replicationSize: W / S,
    hierarchical,
    requiredBytes: chosen.requiredBytes,
    usableBytes: usable,
    candidates,
    reason,
  };
}

/** Options shared by {@link planTraining} and {@link simulateScaling}. */
export interface TrainingOptions {
  readonly cluster: ClusterPreset;
  readonly model: ModelSpec;
  /** Sequence length (default: the model's). */
  readonly sequence?: number;
  /** Sequences per GPU per micro-step, or 'auto': the largest that fits MiCS' plan (at most `maxMicroBatch`). */
  readonly microBatch?: number | 'auto';
  readonly maxMicroBatch?: number;
  /** Micro-steps per optimizer step (default 1). */
  readonly accumulation?: number;
  readonly recompute?: boolean;
  /** How attention keeps its activations (default `unfused`; `flash`: FlashAttention or fused SDPA). */
  readonly attention?: AttentionKernel;
  readonly accounting?: StateAccounting;
  readonly reduceDtype?: 'fp32' | 'bf16';
  readonly prefetchDepth?: number;
  readonly granularity?: UnitGranularity;
  readonly fragmentation?: number;
  /** MiCS partition size; default: chosen by memory. */
  readonly partitionSize?: number;
  /** HSDP: defer the replica all-reduce to the accumulation boundary. */
  readonly deferAllReduce?: boolean;
}

/** A memory evaluation of one partition size. */
export interface PlannedCandidate extends PartitionCandidate {
  readonly memory: MemoryBreakdown;
}

/** What `mics plan` prints. */
export interface TrainingPlan {
  readonly worldSize: number;
  readonly nodes: number;
  readonly sequence: number;
  readonly parameters: number;
  readonly partitionSize: number;
  readonly replicationSize: number;
  readonly hierarchical: boolean;
  /** Why this S (and why not the smaller ones). */
  readonly reason: string;
  readonly candidates: readonly PlannedCandidate[];
  readonly microBatch: number;
  /** The largest micro-batch that fits at S (up to maxMicroBatch). */
  readonly maxFittingMicroBatch: number;
  readonly prediction: StepPrediction;
  /**
   * Larger partition sizes (whole nodes or inside one node) with the micro-batch
   * each allows (the given one, or the largest that fits) and their predicted
   * step: more memory per rank for activations can outweigh the larger group.
   */
  readonly alternatives: readonly PlanAlternative[];
}

/** A partition size other than the memory-minimal one, with what it would give. */
export interface PlanAlternative {
  readonly partitionSize: number;
  readonly microBatch: number;
  readonly prediction: StepPrediction;
  /** The highest predicted samples/s of the chosen S and the alternatives. */
  readonly fastest: boolean;
}

function memoryFor(o: TrainingOptions, strategy: Strategy, S: number, microBatch: number, sequence: number): MemoryBreakdown {
  const shard = strategy === 'ddp' ? 1 : S;
  const { padded, largest } = unitTotals(o.model, shard, o.granularity ?? 'layer');
  return memoryPerGpu({
    model: o.model,
    paddedParameters: padded,
    largestUnit: largest,
    shardSize: shard,
    gathersParameters: strategy !== 'zero2' && strategy !== 'ddp',
    replicatedParameters: strategy === 'zero2',
    precision: precisionOf(o.accounting ?? 'engine', o.reduceDtype),
    prefetchDepth: o.prefetchDepth ?? 1,
    microBatch,
    sequence,
    recompute: o.recompute ?? true,
    attention: o.attention,
    deviceMemoryBytes: o.cluster.device.memoryBytes,
    runtimeReserveBytes: o.cluster.runtimeReserveBytes,
    fragmentation: o.fragmentation ?? 0.1,
  });
}

/** The partition size a strategy uses on `worldSize` ranks (MiCS: chosen by memory at `microBatch`). */
function partitionCandidates(o: TrainingOptions, worldSize: number, microBatch: number, sequence: number): PlannedCandidate[] {
  const G = o.cluster.gpusPerNode;
  return divisors(worldSize).map((S) => {
    const memory = memoryFor(o, 'mics', S, microBatch, sequence);
    const straddles = S > G && S % G !== 0;
    const reason = memory.fits
      ? `fits: ${bytes(memory.total)} of ${bytes(memory.usable)} usable`
      : `needs ${bytes(memory.total)} > ${bytes(memory.usable)} usable (model states ${bytes(memory.modelStates)}, activations ${bytes(memory.activations)})`;
    return { partitionSize: S, requiredBytes: memory.total, fits: memory.fits, straddlesNodes: straddles, reason, memory };
  });
}

function checkWorld(o: TrainingOptions, worldSize: number): void {
  const G = o.cluster.gpusPerNode;
  if (!Number.isInteger(worldSize) || worldSize < 1) throw invalidArgument(`GPU count ${describeValue(worldSize)} is not valid: use a positive integer`);
  if (worldSize > PLAN_LIMITS.gpus) {
    throw invalidArgument(`GPU count ${worldSize} is too large: use at most ${PLAN_LIMITS.gpus} GPUs (${MAX_GPUS.what})`);
  }
  if (worldSize > G && worldSize % G !== 0) {
    throw invalidArgument(`GPU count ${worldSize} is not a whole number of ${o.cluster.name} nodes: use a multiple of ${G}`);
  }
}

function chooseForWorld(o: TrainingOptions, worldSize: number, microBatch: number, sequence: number): { S: number; reason: string; candidates: PlannedCandidate[] } {
  const candidates = partitionCandidates(o, worldSize, microBatch, sequence);
  if (o.partitionSize !== undefined) {
    const c = candidates.find((x) => x.partitionSize === o.partitionSize);
    if (!c) throw invalidArgument(`partition size ${o.partitionSize} does not divide ${worldSize} GPUs: use one of ${listSizes(divisors(worldSize))}`);
    return { S: c.partitionSize, reason: `S = ${c.partitionSize}: given (${c.reason})`, candidates: candidates.filter((x) => x.partitionSize <= c.partitionSize) };
  }
  const chosen = candidates.find((c) => c.fits && !c.straddlesNodes) ?? candidates.find((c) => c.fits);
  if (!chosen) {
    const last = candidates[candidates.length - 1];
    throw invalidArgument(
      `${o.model.name} (${formatCount(parameterCount(o.model))} parameters) fits at no partition size on ${worldSize} ${o.cluster.device.name} GPUs ` +
        `with micro-batch ${microBatch}: even S = ${worldSize} ${last.reason}; use more GPUs, a smaller micro-batch, recomputation or a cluster with more memory`,
    );
  }
  const G = o.cluster.gpusPerNode;
  const S = chosen.partitionSize;
  const shown = candidates.filter((c) => c.partitionSize <= S);
  const notFitting = shown.filter((c) => !c.fits);
  const hier = S > G && S % G === 0;
  const reason =
    `S = ${S}: the smallest partition size that fits (${chosen.reason.replace(/^fits: /, '')})` +
    (notFitting.length ? `; S = ${notFitting[notFitting.length - 1].partitionSize} ${notFitting[notFitting.length - 1].reason}` : '') +
    (hier ? `; the group spans ${S / G} whole nodes: hierarchical all-gather and reduce-scatter` : S <= G ? '; the group stays inside one node' : '');
  return { S, reason, candidates: shown };
}

function resolveMicroBatch(o: TrainingOptions, S: number, sequence: number): { microBatch: number; max: number } {
  const max = largestFitting(o.maxMicroBatch ?? 64, (b) => memoryFor(o, 'mics', S, b, sequence).fits);
  if (o.microBatch === undefined || o.microBatch === 'auto') return { microBatch: Math.max(1, max), max };
  return { microBatch: o.microBatch, max };
}

function integerOption(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw invalidArgument(`${name} ${describeValue(v)} is not valid: use an integer in [${min}, ${max}]`);
  }
}

/** A strategy name as messages show it: 'mics' (a non-string as describeValue has it). */
const quoted = (v: unknown): string => (typeof v === 'string' ? `'${v.slice(0, 64)}'` : describeValue(v));

function oneOf(name: string, v: unknown, valid: readonly string[]): void {
  if (!valid.includes(v as string)) throw invalidArgument(`${name} ${describeValue(v)} is not valid: use ${valid.join(' or ')}`);
}

/**
 * Checks the options every planning call shares: an object with a cluster and a model
 * the planner can take (see {@link PLAN_LIMITS}), and each optional setting in range.
 */
function checkTrainingOptions(o: TrainingOptions, what: string): void {
  if (typeof o !== 'object' || o === null) {
    throw invalidArgument(`${what}: options ${describeValue(o)} is not valid: use an object {cluster: clusterPreset('p4d'), model: modelPreset('100b'), ...}`);
  }
  checkCluster(o.cluster, 'cluster');
  checkModel(o.model, 'model');
  if (o.sequence !== undefined) integerOption('sequence length', o.sequence, 1, PLAN_LIMITS.sequence);
  if (o.microBatch !== undefined && o.microBatch !== 'auto') {
    if (typeof o.microBatch !== 'number' || !Number.isInteger(o.microBatch) || o.microBatch < 1 || o.microBatch > PLAN_LIMITS.microBatch) {
      throw invalidArgument(`micro-batch ${describeValue(o.microBatch)} is not valid: use a positive integer up to ${PLAN_LIMITS.microBatch} or auto`);
    }
  }
  if (o.maxMicroBatch !== undefined) integerOption('largest micro-batch (maxMicroBatch)', o.maxMicroBatch, 1, PLAN_LIMITS.microBatch);
  if (o.accumulation !== undefined) integerOption('accumulation steps', o.accumulation, 1, Number.MAX_SAFE_INTEGER);
  if (o.prefetchDepth !== undefined) integerOption('prefetch depth', o.prefetchDepth, 0, Number.MAX_SAFE_INTEGER);
  if (o.partitionSize !== undefined) integerOption('partition size', o.partitionSize, 1, PLAN_LIMITS.gpus);
  if (o.accounting !== undefined) oneOf('accounting', o.accounting, ['engine', 'paper']);
  if (o.reduceDtype !== undefined) oneOf('reduce dtype', o.reduceDtype, ['fp32', 'bf16']);
  if (o.granularity !== undefined) oneOf('granularity', o.granularity, ['layer', 'module']);
  if (o.attention !== undefined) oneOf('attention', o.attention, ATTENTION_KERNELS);
  const f = o.fragmentation;
  if (f !== undefined && !(typeof f === 'number' && f >= 0 && f < 1)) {
    throw invalidArgument(`fragmentation margin ${describeValue(f)} is not valid: use a fraction in [0, 1)`);
  }
}

function stepSetup(o: TrainingOptions, worldSize: number, strategy: Strategy, S: number, microBatch: number, sequence: number): StepSetup {
  return {
    cluster: o.cluster,
    model: o.model,
    worldSize,
    strategy,
    partitionSize: strategy === 'mics' || strategy === 'hsdp' ? (strategy === 'hsdp' ? Math.min(o.cluster.gpusPerNode, worldSize) : S) : undefined,
    microBatch,
    sequence,
    accumulation: o.accumulation ?? 1,
    recompute: o.recompute,
    attention: o.attention,
    accounting: o.accounting,
    reduceDtype: o.reduceDtype,
    prefetchDepth: o.prefetchDepth,
    granularity: o.granularity,
    deferAllReduce: o.deferAllReduce,
    fragmentation: o.fragmentation,
  };
}

/**
 * `mics plan`: S by memory (smallest fitting, whole nodes preferred), the
 * micro-batch (given, or the largest that fits), and the predicted step.
 */
export function planTraining(o: TrainingOptions & { readonly nodes: number }): TrainingPlan {
  checkTrainingOptions(o, 'planTraining');
  const G = o.cluster.gpusPerNode;
  if (typeof o.nodes !== 'number' || !Number.isInteger(o.nodes) || o.nodes < 1) {
    throw invalidArgument(`--nodes ${describeValue(o.nodes)} is not valid: use a positive integer`);
  }
  if (o.nodes * G > PLAN_LIMITS.gpus) {
    throw invalidArgument(
      `--nodes ${o.nodes} is too many: ${o.nodes} nodes of ${G} GPUs are more than ${PLAN_LIMITS.gpus} GPUs (${MAX_GPUS.what}); ` +
        `use at most ${Math.max(1, Math.floor(PLAN_LIMITS.gpus / G))} ${o.cluster.name} nodes`,
    );
  }
  const W = o.nodes * G;
  const sequence = o.sequence ?? o.model.sequence;
  const first = typeof o.microBatch === 'number' ? o.microBatch : 1;
  const { S, reason, candidates } = chooseForWorld(o, W, first, sequence);
  const { microBatch, max } = resolveMicroBatch(o, S, sequence);
  const prediction = predictStep(stepSetup(o, W, 'mics', S, microBatch, sequence));
  const groups = strategyGroups({ cluster: o.cluster, worldSize: W, strategy: 'mics', partitionSize: S });
  const others: { partitionSize: number; microBatch: number; prediction: StepPrediction }[] = [];
  for (const alt of divisors(W)) {
    if (alt <= S || (alt > G && alt % G !== 0)) continue;
    const b = typeof o.microBatch === 'number' ? o.microBatch : resolveMicroBatch(o, alt, sequence).max;
    if (b < 1 || !memoryFor(o, 'mics', alt, b, sequence).fits) continue;
    others.push({ partitionSize: alt, microBatch: b, prediction: predictStep(stepSetup(o, W, 'mics', alt, b, sequence)) });
  }
  const best = Math.max(prediction.samplesPerSecond, ...others.map((a) => a.prediction.samplesPerSecond));
  const alternatives = others.map((a) => ({ ...a, fastest: a.prediction.samplesPerSecond === best && best > prediction.samplesPerSecond }));
  return {
    worldSize: W,
    nodes: o.nodes,
    sequence,
    parameters: parameterCount(o.model),
    partitionSize: S,
    replicationSize: W / S,
    hierarchical: groups.hierarchical,
    reason,
    candidates,
    microBatch,
    maxFittingMicroBatch: max,
    prediction,
    alternatives,
  };
}

/** One row of `mics simulate`. */
export interface ScalingRow {
  readonly strategy: Strategy;
  readonly gpus: number;
  readonly nodes: number;
  readonly prediction: StepPrediction;
  /** Throughput per GPU relative to this strategy's first row (weak scaling: the per-GPU batch is fixed). */
  readonly weakScalingEfficiency: number;
  /** Whether the per-GPU memory fits. */
  readonly fits: boolean;
}

/** A weak-scaling sweep: the same per-GPU micro-batch at every GPU count, for every strategy. */
export interface ScalingResult {
  readonly microBatch: number;
  readonly sequence: number;
  readonly rows: readonly ScalingRow[];
}

/**
 * `mics simulate`: every strategy at every GPU count with the same per-GPU batch.
 * MiCS' S is chosen by memory at each count (unless given); 'auto' micro-batch is
 * the largest that fits MiCS' plan at the smallest count.
 */
export function simulateScaling(o: TrainingOptions & { readonly gpus: readonly number[]; readonly strategies: readonly Strategy[] }): ScalingResult {
  checkTrainingOptions(o, 'simulateScaling');
  if (!Array.isArray(o.gpus)) throw invalidArgument(`gpus ${describeValue(o.gpus)} is not valid: use an array of GPU counts, e.g. [16, 32, 64]`);
  if (o.gpus.length === 0) throw invalidArgument('--gpus needs at least one GPU count, e.g. 16,32,64');
  if (o.gpus.length > PLAN_LIMITS.gpuCounts) {
    throw invalidArgument(`--gpus lists ${o.gpus.length} GPU counts: use at most ${PLAN_LIMITS.gpuCounts} (PLAN_LIMITS.gpuCounts) in one sweep`);
  }
  if (!Array.isArray(o.strategies) || o.strategies.length === 0) {
    throw invalidArgument(`strategies ${describeValue(o.strategies)} is not valid: use a non-empty array of ${STRATEGIES.join(', ')}`);
  }
  for (const s of o.strategies) {
    if (!STRATEGIES.includes(s)) throw invalidArgument(`unknown strategy ${quoted(s)}: use ${STRATEGIES.join(', ')}`);
  }
  const gpus = [...o.gpus].sort((a, b) => a - b);
  for (const W of gpus) checkWorld(o, W);
  const sequence = o.sequence ?? o.model.sequence;
  const first = typeof o.microBatch === 'number' ? o.microBatch : 1;
  const base = chooseForWorld(o, gpus[0], first, sequence);
  const { microBatch } = resolveMicroBatch(o, base.S, sequence);
  const rows: ScalingRow[] = [];
  for (const strategy of o.strategies) {
    let reference: number | undefined;
    for (const W of gpus) {
      const S = strategy === 'mics' ? chooseForWorld(o, W, microBatch, sequence).S : W;
      const prediction = predictStep(stepSetup(o, W, strategy, S, microBatch, sequence));
      const perGpu = prediction.samplesPerSecond / W;
      reference ??= perGpu;
      rows.push({
        strategy,
        gpus: W,
        nodes: Math.ceil(W / o.cluster.gpusPerNode),
        prediction,
        weakScalingEfficiency: perGpu / reference,
        fits: prediction.memory.fits,
      });
    }
  }
  return { microBatch, sequence, rows };
}

/**
 * The largest micro-batch (up to `maxMicroBatch`, default 64) whose memory fits
 * for `strategy` at partition size `partitionSize` (ignored by strategies that
 * fix it); 0 when not even one sequence fits.
 */
export function largestMicroBatch(o: TrainingOptions, strategy: Strategy, worldSize: number, partitionSize?: number): number {
  checkTrainingOptions(o, 'largestMicroBatch');
  if (!STRATEGIES.includes(strategy)) throw invalidArgument(`unknown strategy ${quoted(strategy)}: use ${STRATEGIES.join(', ')}`);
  checkWorld(o, worldSize);
  return fittingMicroBatch(o, strategy, worldSize, partitionSize);
}

/** {@link largestMicroBatch} on options already checked (fastestPartition asks once per partition size). */
function fittingMicroBatch(o: TrainingOptions, strategy: Strategy, worldSize: number, partitionSize?: number): number {
  const sequence = o.sequence ?? o.model.sequence;
  const S = strategy === 'mics' ? (partitionSize ?? worldSize) : strategy === 'hsdp' ? Math.min(o.cluster.gpusPerNode, worldSize) : strategy === 'ddp' ? 1 : worldSize;
  return largestFitting(o.maxMicroBatch ?? 64, (b) => memoryFor(o, strategy, S, b, sequence).fits);
}

/**
 * The fastest MiCS configuration on `worldSize` GPUs: every partition size from
 * the memory-minimal one up (whole nodes or inside a node), each with its largest
 * fitting micro-batch, or with `o.microBatch` when that is a number (sizes it does
 * not fit are skipped); the highest predicted samples/s wins.
 */
export function fastestPartition(o: TrainingOptions, worldSize: number): { partitionSize: number; microBatch: number; prediction: StepPrediction } {
  checkTrainingOptions(o, 'fastestPartition');
  checkWorld(o, worldSize);
  const sequence = o.sequence ?? o.model.sequence;
  const G = o.cluster.gpusPerNode;
  const { S: smallest } = chooseForWorld({ ...o, partitionSize: undefined }, worldSize, 1, sequence);
  const fixed = typeof o.microBatch === 'number' ? o.microBatch : undefined;
  let best: { partitionSize: number; microBatch: number; prediction: StepPrediction } | undefined;
  for (const S of divisors(worldSize)) {
    if (S < smallest || (S > G && S % G !== 0)) continue;
    const b = fixed ?? fittingMicroBatch(o, 'mics', worldSize, S);
    if (b < 1 || (fixed !== undefined && !memoryFor(o, 'mics', S, fixed, sequence).fits)) continue;
    const prediction = predictStep(stepSetup(o, worldSize, 'mics', S, b, sequence));
    if (!best || prediction.samplesPerSecond > best.prediction.samplesPerSecond) best = { partitionSize: S, microBatch: b, prediction };
  }
  if (!best) throw invalidArgument(`${o.model.name} fits at no partition size on ${worldSize} GPUs${fixed === undefined ? '' : ` with micro-batch ${fixed}`}`);
  return best;
}
