/**
 * `mics simulate --validate`: published figures against the model's predictions,
 * the way Calculon (SC'23) validates itself: each figure, its prediction, the
 * error, and the average and maximum absolute error.
 *
 * Every figure is predicted with the cluster preset as it stands and one rule
 * set; nothing is fitted per figure. Shared by both rule sets: the systems'
 * precision (16 B per parameter, half-precision gradients), activation
 * recomputation, units per weight matrix (DeepSpeed's module hooks; SageMaker's
 * library works the same way), prefetch depth 1, one micro-step per step. Where a
 * source (or its authors' public configurations) gives the micro-batch, sequence,
 * global batch or the baseline's behaviour, that is used. Most do not publish the
 * partition size or the micro-batch, so two rules fill them in (docs/scaling.md,
 * "Validation"):
 *
 * - `planned`: what `mics plan` chooses: the smallest S that fits, then the
 *   largest micro-batch that fits at that S. Fixed before any comparison.
 * - `fastest`: the configuration with the highest predicted throughput: every S
 *   from the smallest that fits up, each with its largest micro-batch (for
 *   ZeRO-3, its own largest micro-batch). Added after `planned` missed the
 *   throughput figures, on the argument that published peak figures come from
 *   tuned configurations.
 *
 * In both, S and micro-batch are chosen at the smallest GPU count of a figure and
 * held for the larger ones (weak scaling).
 *
 * @packageDocumentation
 */
import { formatCount, modelPreset, parameterCount, type ModelSpec } from './models';
import { fastestPartition, largestMicroBatch, simulateScaling, type ScalingResult, type TrainingOptions } from './planner';
import { clusterPreset, type ClusterPreset } from './presets';
import type { StepPrediction, Strategy } from './schedule';

/** How the unpublished partition size and micro-batch are filled in (see the module comment). */
export type ValidationRule = 'planned' | 'fastest';
export const VALIDATION_RULE_NAMES: readonly ValidationRule[] = ['planned', 'fastest'];

/** One published figure and the model's prediction of it. */
export interface ValidationPoint {
  readonly id: string;
  /** What the figure is, in words. */
  readonly figure: string;
  readonly published: number;
  readonly predicted: number;
  readonly unit: string;
  /** |predicted - published| / published. */
  readonly error: number;
  /** Where the figure is published. */
  readonly source: string;
  /** Configuration the source does not give, and what was assumed. */
  readonly assumptions: string;
  /** What the prediction consists of (S, micro-batch, exposed communication), for the table's notes. */
  readonly detail: string;
}

/** The whole validation under one rule set. */
export interface ValidationReport {
  readonly rule: ValidationRule;
  readonly points: readonly ValidationPoint[];
  readonly averageError: number;
  readonly maxError: number;
  /** The shared rule set, in words. */
  readonly rules: string;
}

const MICS_PAPER = 'MiCS paper (Zhang et al., VLDB 2023, arXiv 2205.00119) and Amazon Science blog "Near-linear scaling of gigantic-model training on AWS"';
const SAGEMAKER_BLOG = 'AWS ML blog "Train gigantic models with near-linear scaling using sharded data parallelism on Amazon SageMaker" (2022)';
const DEEPSPEED_PR_1453 =
  'DeepSpeed pull request #1453 "Various ZeRO Stage3 Optimizations + Improvements" (AWS, opened 2021-10-12, merged 2022-01-20), results on p4d';

/**
 * The BERT comparison's setup, from the first MiCS author's public DeepSpeed BERT
 * configurations (github.com/zarzen/DeepSpeedExamples,
 * bing_bert/zero_opt_experiments/configs): 8 sequences of 512 tokens per GPU in every
 * file. Their global batches differ (1024 and 8192 for 10B, 2048 for 15B, 8192 for
 * 50B); the largest is used for every model, since the figure is an "up to" and
 * more micro-steps per step favour MiCS (its second hop is amortised over them).
 */
const BERT_MICRO_BATCH = 8;
const BERT_GLOBAL_BATCH = 8192;
const BERT_GPUS = [16, 32, 64, 128];
/**
 * DeepSpeed v0.5.6's ZeRO-3 (the paper's baseline, tagged 2021-11-11) gathers each
 * prefetched parameter after a `torch.cuda.synchronize()` (partition_parameters.py,
 * `_allgather_param`), up to 5e7 elements per prefetch: with BERT's 2560-wide
 * matrices a prefetch holds several parameters, each waiting for the one before,
 * so gathers do not overlap compute. Modelled as prefetch depth 0 (the last
 * parameter of each prefetch, which does overlap the current module, is not credited).
 */
const DEEPSPEED_056_PREFETCH_DEPTH = 0;

/** What every figure shares, whichever rule fills in S and the micro-batch. */
export const VALIDATION_RULES: Omit<TrainingOptions, 'cluster' | 'model'> = Object.freeze({
  accounting: 'paper' as const,
  recompute: true,
  granularity: 'module' as const,
  prefetchDepth: 1,
  accumulation: 1,
  fragmentation: 0.1,
});

const SHARED_TEXT =
  'paper precision (16 B/parameter, fp16 gradients), recomputation, units per weight matrix, prefetch depth 1, one micro-step per step ' +
  'unless the source gives the batch; S and micro-batch chosen at the smallest GPU count of a figure and held for the larger ones';
const RULE_TEXT: Record<ValidationRule, string> = {
  planned: 'planned: S and micro-batch as `mics plan` chooses them (smallest S that fits, then the largest micro-batch that fits at it)',
  fastest: 'fastest: the S (from the smallest that fits up) and largest micro-batch with the highest predicted throughput; ZeRO-3 at its own largest micro-batch',
};

/**
 * Sweeps `strategies` over `gpus` under `rule`: `planned` lets the planner choose;
 * `fastest` fixes MiCS' S and micro-batch to the fastest at the smallest count and
 * gives ZeRO-3 its own largest micro-batch.
 */
function sweep(rule: ValidationRule, cluster: ClusterPreset, model: ModelSpec, gpus: number[], strategies: Strategy[]): ScalingResult {
  const base: TrainingOptions = { ...VALIDATION_RULES, cluster, model };
  if (rule === 'planned') return simulateScaling({ ...base, microBatch: 'auto', gpus, strategies });
  const rows: ScalingResult['rows'][number][] = [];
  let microBatch = 0;
  for (const strategy of strategies) {
    if (strategy === 'mics') {
      const best = fastestPartition(base, gpus[0]);
      microBatch = best.microBatch;
      rows.push(...simulateScaling({ ...base, partitionSize: best.partitionSize, microBatch: best.microBatch, gpus, strategies: ['mics'] }).rows);
    } else {
      const b = Math.max(1, largestMicroBatch(base, strategy, gpus[0]));
      rows.push(...simulateScaling({ ...base, microBatch: b, gpus, strategies: [strategy] }).rows);
    }
  }
  return { microBatch, sequence: model.sequence, rows };
}

function find(result: ScalingResult, strategy: Strategy, gpus: number): StepPrediction {
  const row = result.rows.find((r) => r.strategy === strategy && r.gpus === gpus);
  if (!row) throw new Error(`validation: no row for ${strategy} at ${gpus} GPUs`);
  return row.prediction;
}

function point(p: Omit<ValidationPoint, 'error'>): ValidationPoint {
  return { ...p, error: Math.abs(p.predicted - p.published) / p.published };
}

const describe = (p: StepPrediction): string =>
  `S=${p.partitionSize}${p.hierarchical ? ' (hierarchical)' : ''}, micro-batch ${p.microBatch}, step ${p.stepTime.toFixed(2)} s, ` +
  `exposed communication ${((p.exposedCommTime / p.stepTime) * 100).toFixed(0)}%`;

/** Runs every published comparison under `rule`. Pure and deterministic. */
export function runValidation(rule: ValidationRule = 'planned'): ValidationReport {
  const points: ValidationPoint[] = [];

  // 100B on p4d, 128 -> 512 GPUs (16 -> 64 nodes), MiCS and ZeRO-3.
  const m100 = modelPreset('gpt-100b');
  const p4d = clusterPreset('p4d');
  const s100 = sweep(rule, p4d, m100, [128, 256, 512], ['mics', 'zero3']);
  const eff = (strategy: Strategy): number => {
    const a = find(s100, strategy, 128), b = find(s100, strategy, 512);
    return (b.samplesPerSecond / 512) / (a.samplesPerSecond / 128);
  };
  const assume100 =
    'model shape (proprietary): GPT, 80 layers, hidden 10240, 80 heads, sequence 2048, vocabulary 50257; ' +
    'S and micro-batch unpublished (rule above); TFLOPS count executed FLOPs (Megatron-LM formula with recomputation)';
  const m512 = find(s100, 'mics', 512), z512 = find(s100, 'zero3', 512);
  points.push(
    point({
      id: 'mics-100b-weak', figure: 'MiCS weak-scaling efficiency, 100B, 128 -> 512 A100 (p4d)', published: 0.994, predicted: eff('mics'),
      unit: 'fraction', source: MICS_PAPER, assumptions: assume100, detail: `512 GPUs: ${describe(m512)}`,
    }),
    point({
      id: 'zero3-100b-weak', figure: 'ZeRO-3 weak-scaling efficiency, 100B, 128 -> 512 A100 (p4d)', published: 0.72, predicted: eff('zero3'),
      unit: 'fraction', source: MICS_PAPER, assumptions: assume100, detail: `512 GPUs: ${describe(z512)}`,
    }),
    point({
      id: 'mics-100b-tflops', figure: 'MiCS TFLOPS per GPU, 100B on 512 A100 (p4d)', published: 170, predicted: m512.tflopsPerGpu,
      unit: 'TFLOPS', source: MICS_PAPER, assumptions: assume100, detail: describe(m512),
    }),
    point({
      id: 'zero3-100b-tflops', figure: 'ZeRO-3 TFLOPS per GPU, 100B on 512 A100 (p4d)', published: 62, predicted: z512.tflopsPerGpu,
      unit: 'TFLOPS', source: MICS_PAPER, assumptions: assume100, detail: describe(z512),
    }),
  );

  // 175B, sequence 2048, 16 p4de.24xlarge = 128 A100 80 GB.
  const m175 = modelPreset('gpt3-175b');
  const s175 = sweep(rule, clusterPreset('p4de'), m175, [128], ['mics']);
  const p175 = find(s175, 'mics', 128);
  points.push(
    point({
      id: 'mics-175b-tflops', figure: 'MiCS TFLOPS per GPU, 175B, 16 p4de (128 A100 80 GB)', published: 169, predicted: p175.tflopsPerGpu,
      unit: 'TFLOPS', source: MICS_PAPER,
      assumptions: 'GPT-3 175B shape (96 x 12288, 96 heads); S and micro-batch unpublished (rule above); TFLOPS count executed FLOPs',
      detail: describe(p175),
    }),
  );

  // "Up to 2.82x over ZeRO" on BERT (p3dn.24xlarge, DeepSpeed v0.5.6): the largest MiCS / ZeRO-3 ratio over the grid,
  // at the authors' batch (BERT_MICRO_BATCH, BERT_GLOBAL_BATCH) and with v0.5.6's gathers for ZeRO-3.
  const p3dn = clusterPreset('p3dn');
  let best = { ratio: 0, text: '' };
  for (const name of ['bert-10b', 'bert-15b', 'bert-20b']) {
    const model = modelPreset(name);
    let partitionSize: number | undefined;
    for (const W of BERT_GPUS) {
      const base: TrainingOptions = {
        ...VALIDATION_RULES, cluster: p3dn, model, microBatch: BERT_MICRO_BATCH, accumulation: BERT_GLOBAL_BATCH / (BERT_MICRO_BATCH * W),
      };
      // planned: S by memory at every count; fastest: the fastest S at the smallest count, held.
      if (rule === 'fastest') partitionSize ??= fastestPartition(base, W).partitionSize;
      const mics = find(simulateScaling({ ...base, partitionSize, gpus: [W], strategies: ['mics'] }), 'mics', W);
      const zero = find(simulateScaling({ ...base, prefetchDepth: DEEPSPEED_056_PREFETCH_DEPTH, gpus: [W], strategies: ['zero3'] }), 'zero3', W);
      const ratio = mics.samplesPerSecond / zero.samplesPerSecond;
      if (ratio > best.ratio) best = { ratio, text: `${name} on ${W} GPUs: MiCS ${describe(mics)}; ZeRO-3 ${describe(zero)}` };
    }
  }
  points.push(
    point({
      id: 'mics-bert-speedup', figure: 'MiCS over ZeRO-3, BERT 10B-20B on p3dn (V100), the largest ratio', published: 2.82, predicted: best.ratio,
      unit: 'x', source: MICS_PAPER,
      assumptions:
        `grid: BERT 10B, 15B (the first author's shapes), 20B (shape assumed) x ${BERT_GPUS.join(', ')} GPUs; ` +
        `${BERT_MICRO_BATCH} sequences of 512 per GPU (the first author's DeepSpeed BERT configurations, ` +
        `github.com/zarzen/DeepSpeedExamples) and a global batch of ${BERT_GLOBAL_BATCH}, the largest of theirs (1024-8192); S by the rule; ` +
        'ZeRO-3 as DeepSpeed v0.5.6 runs it: gathers after a device synchronize, not overlapped (prefetch depth 0)',
      detail: best.text,
    }),
  );

  // SageMaker sharded data parallelism (MiCS inside): 30B GPT-2, sequence 2048, 256 GPUs (32 p4d).
  const m30 = modelPreset('gpt2-30b');
  const s30 = sweep(rule, p4d, m30, [256], ['mics', 'zero3']);
  const mics30 = find(s30, 'mics', 256), zero30 = find(s30, 'zero3', 256);
  // SageMaker's scripts count 8 x parameters x tokens (recomputation, no attention term).
  const smpTflops = (p: StepPrediction): number => (8 * parameterCount(m30) * p.tokensPerSecond) / 256 / 1e12;
  const assume30 = "shape from the SageMaker example notebook; sharding degree and batch unpublished (rule above); TFLOPS as SageMaker's scripts count them (8 x parameters x tokens/s per GPU)";
  points.push(
    point({
      id: 'smp-30b-tflops', figure: 'SageMaker sharded data parallel TFLOPS per GPU, 30B GPT-2, 256 A100 (p4d)', published: 141, predicted: smpTflops(mics30),
      unit: 'TFLOPS', source: SAGEMAKER_BLOG, assumptions: assume30, detail: describe(mics30),
    }),
    point({
      id: 'smp-30b-speedup', figure: 'SageMaker sharded data parallel over DeepSpeed ZeRO-3, 30B GPT-2, 256 A100', published: 1.397,
      predicted: mics30.samplesPerSecond / zero30.samplesPerSecond, unit: 'x', source: SAGEMAKER_BLOG, assumptions: assume30,
      detail: `MiCS ${describe(mics30)}; ZeRO-3 ${describe(zero30)}`,
    }),
  );

  // DeepSpeed's ZeRO-3 after PR #1453 on p4d, a configuration the source gives whole: 16 sequences of 512 per GPU,
  // layer-wise recomputation, model TFLOPS (recomputation not counted). Neither rule applies: nothing is unpublished
  // but the model shapes (HuggingFace RoBERTa scaled up), and the prediction moves < 3% across shapes of the same size.
  const roberta = (layers: number, hidden: number, heads: number): ModelSpec => ({
    name: `roberta ${layers}x${hidden}`, family: 'bert', layers, hidden, heads, vocab: 53000, sequence: 512,
    source: `${DEEPSPEED_PR_1453}; shape assumed (12 L h^2 at the size), vocabulary ~53k as stated`,
  });
  for (const [model, W, published] of [[roberta(31, 5120, 40), 64, 92.07], [roberta(64, 8192, 64), 64, 116.06], [roberta(64, 8192, 64), 256, 108]] as const) {
    const size = formatCount(parameterCount(model));
    const p = find(simulateScaling({ ...VALIDATION_RULES, cluster: p4d, model, microBatch: 16, gpus: [W], strategies: ['zero3'] }), 'zero3', W);
    points.push(
      point({
        id: `zero3-roberta-${size.toLowerCase()}-${W}-tflops`,
        figure: `DeepSpeed ZeRO-3 model TFLOPS per GPU, RoBERTa ${size}, ${W} A100 (p4d), 16 x 512`,
        published, predicted: p.modelTflopsPerGpu, unit: 'TFLOPS', source: DEEPSPEED_PR_1453,
        assumptions:
          `published: p4d, ${W} GPUs, 16 sequences of 512 per GPU, layer-wise recomputation, bf16, TFLOPS without recomputation; ` +
          `assumed: shape ${model.layers} x ${model.hidden} (unpublished), one micro-step per step`,
        detail: describe(p),
      }),
    );
  }

  const errors = points.map((p) => p.error);
  return {
    rule,
    points,
    averageError: errors.reduce((a, b) => a + b, 0) / errors.length,
    maxError: Math.max(...errors),
    rules: `${SHARED_TEXT}; ${RULE_TEXT[rule]}`,
  };
}
