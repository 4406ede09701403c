/**
 * Memory per GPU of a sharded training job, and the parameter units the engine
 * gathers.
 *
 * Model states per parameter, split by the partition size S:
 * - `paper` (the MiCS paper's accounting, mixed-precision Adam): 2 B half-precision
 *   parameter + 2 B half-precision gradient + 12 B fp32 master, m, v = 16 B.
 * - `engine` (this package's engine): 2 B parameter shard in the gather dtype
 *   + 4 B fp32 master + 8 B Adam m, v + 4 B fp32 gradient accumulator = 18 B.
 *
 * On top of the states: the units gathered at once (the one computing plus the
 * prefetched ones), the full gradient of the unit being reduce-scattered,
 * activations, a fixed runtime reserve, and a fragmentation margin (a fraction of
 * the device the allocator cannot hand out).
 *
 * @packageDocumentation
 */
import { activationBytes, embeddingParameters, layerForwardFlops, layerParameters, logitsForwardFlops, type AttentionKernel, type ModelSpec } from './models';

/** How model states are counted (see the module comment). */
export type StateAccounting = 'engine' | 'paper';

/** Bytes per element of what the engine keeps and moves. */
export interface PrecisionSpec {
  readonly accounting: StateAccounting;
  /** Model states per parameter (before dividing by S). */
  readonly stateBytesPerParameter: number;
  /** Gathered parameters (bf16/fp16). */
  readonly gatherBytes: number;
  /** Reduced gradients (fp32 by default in the engine; fp16 in the paper). */
  readonly reduceBytes: number;
  /** Bytes per parameter the optimizer reads and writes on its shard (Adam, master, cast back). */
  readonly optimizerBytesPerParameter: number;
}

/** The precision of an accounting; `reduceDtype: 'bf16'` halves the engine's reduction bytes. */
export function precisionOf(accounting: StateAccounting, reduceDtype: 'fp32' | 'bf16' = 'fp32'): PrecisionSpec {
  if (accounting === 'paper') {
    return { accounting, stateBytesPerParameter: 16, gatherBytes: 2, reduceBytes: 2, optimizerBytesPerParameter: 30 };
  }
  return {
    accounting,
    stateBytesPerParameter: 18,
    gatherBytes: 2,
    reduceBytes: reduceDtype === 'bf16' ? 2 : 4,
    // Read gradient, master, m, v (16 B), write master, m, v (12 B) and the bf16 shard (2 B).
    optimizerBytesPerParameter: 30,
  };
}

/** Units are split per layer (this engine's default) or per weight matrix (DeepSpeed's module hooks). */
export type UnitGranularity = 'layer' | 'module';

/** One parameter unit: a flat buffer gathered as a whole. */
export interface ParameterUnit {
  readonly name: string;
  /** Elements after padding to a multiple of S x 16. */
  readonly elements: number;
  /** Forward FLOPs of the computation that uses it, per micro-step. */
  readonly forwardFlops: number;
}

/** Relative sizes of a layer's weight matrices, in the order they are used. */
function moduleShares(m: ModelSpec): number[] {
  const h = m.hidden;
  const ffn = m.ffn ?? 4 * h;
  if (m.family === 'llama') {
    const kv = (h / m.heads) * (m.kvHeads ?? m.heads) * h;
    return [h * h, kv, kv, h * h, h * ffn, h * ffn, h * ffn];
  }
  if (m.family === 'bert') return [h * h, h * h, h * h, h * h, h * ffn, h * ffn]; // q, k, v, o, fc1, fc2 (Hugging Face BERT)
  return [3 * h * h, h * h, h * ffn, h * ffn]; // fused qkv, o, fc1, fc2 (GPT-2)
}

/** Pads `n` elements to a multiple of S x 16, as the engine lays out units. */
export function paddedElements(n: number, partitionSize: number): number {
  const quantum = partitionSize * 16;
  return Math.ceil(n / quantum) * quantum;
}

/**
 * The units of a model in forward order: the embeddings (whose output projection
 * runs at the end of forward; its FLOPs are counted here), then each layer, whole
 * or per weight matrix.
 */
export function parameterUnits(m: ModelSpec, partitionSize: number, granularity: UnitGranularity, batch: number, seq: number): ParameterUnit[] {
  const { embeddings, layer } = unitKinds(m, partitionSize, granularity, batch, seq);
  const units: ParameterUnit[] = [{ name: 'embeddings', ...embeddings }];
  for (let l = 0; l < m.layers; l++) {
    layer.forEach((u, i) => units.push({ name: layer.length === 1 ? `layer ${l}` : `layer ${l}.${i}`, ...u }));
  }
  return units;
}

/**
 * The distinct units of {@link parameterUnits}: the embeddings, and the units of one
 * layer (every layer has the same). The time model repeats these instead of listing
 * a named unit per layer.
 */
export function unitKinds(
  m: ModelSpec,
  partitionSize: number,
  granularity: UnitGranularity,
  batch: number,
  seq: number,
): { embeddings: { elements: number; forwardFlops: number }; layer: { elements: number; forwardFlops: number }[] } {
  const layerParams = layerParameters(m);
  const layerFlops = layerForwardFlops(m, batch, seq);
  const shares = granularity === 'module' ? moduleShares(m) : [1];
  const total = shares.reduce((a, b) => a + b, 0);
  return {
    embeddings: { elements: paddedElements(embeddingParameters(m), partitionSize), forwardFlops: logitsForwardFlops(m, batch, seq) },
    layer: shares.map((share) => ({
      elements: paddedElements((layerParams * share) / total, partitionSize),
      forwardFlops: (layerFlops * share) / total,
    })),
  };
}

/**
 * What {@link memoryPerGpu} needs of {@link parameterUnits}, without listing the
 * units: the padded sum of their elements and the largest. The layers' units are all
 * alike, so this costs the same for 10 layers as for 10^5 (the planner evaluates the
 * memory of hundreds of partition sizes and micro-batches). Equals the sum and the
 * maximum over `parameterUnits(m, partitionSize, granularity, ...)`.
 */
export function unitTotals(m: ModelSpec, partitionSize: number, granularity: UnitGranularity): { padded: number; largest: number } {
  // Sizes do not depend on the batch: any batch and sequence will do.
  return totalsOfKinds(unitKinds(m, partitionSize, granularity, 1, m.sequence), m.layers);
}

/** {@link unitTotals} of units already listed by {@link unitKinds}, for a model of `layers` layers. */
export function totalsOfKinds(kinds: ReturnType<typeof unitKinds>, layers: number): { padded: number; largest: number } {
  const { embeddings, layer } = kinds;
  let perLayer = 0;
  let largest = embeddings.elements;
  for (const { elements } of layer) {
    perLayer += elements;
    if (layers > 0) largest = Math.max(largest, elements);
  }
  return { padded: embeddings.elements + layers * perLayer, largest };
}

/** Memory per GPU, bytes, by kind. */
export interface MemoryBreakdown {
  /** Parameters, gradients and optimizer states held by this rank. */
  readonly modelStates: number;
  /** Units gathered at once (computing + prefetched), full size. */
  readonly gatheredUnits: number;
  /** The full gradient of one unit waiting for its reduce-scatter. */
  readonly gradientBuffer: number;
  readonly activations: number;
  /** Context, communication buffers, workspaces. */
  readonly runtime: number;
  /** Sum of the above. */
  readonly total: number;
  /** Device memory less the fragmentation margin: what `total` must stay under. */
  readonly usable: number;
  /** `total <= usable`. */
  readonly fits: boolean;
}

/** What {@link memoryPerGpu} needs. */
export interface MemoryInput {
  readonly model: ModelSpec;
  /** Parameters after per-unit padding. */
  readonly paddedParameters: number;
  /** Elements of the largest unit. */
  readonly largestUnit: number;
  /** Ranks the model states are sharded over (S; W for ZeRO-3; 1 for DDP). */
  readonly shardSize: number;
  /** True when full parameters live only while gathered (MiCS, ZeRO-3, HSDP); false when replicated (ZeRO-2, DDP). */
  readonly gathersParameters: boolean;
  /** ZeRO-2: parameters replicated but gradients and optimizer states sharded over `shardSize`. */
  readonly replicatedParameters?: boolean;
  readonly precision: PrecisionSpec;
  readonly prefetchDepth: number;
  readonly microBatch: number;
  readonly sequence: number;
  readonly recompute: boolean;
  /** How attention keeps its activations (default `unfused`). */
  readonly attention?: AttentionKernel;
  readonly deviceMemoryBytes: number;
  readonly runtimeReserveBytes: number;
  /** Fraction of device memory kept free for fragmentation, 0..1. */
  readonly fragmentation: number;
}

/** The memory table of one rank. */
export function memoryPerGpu(x: MemoryInput): MemoryBreakdown {
  const p = x.precision;
  const modelStates = x.replicatedParameters
    ? x.paddedParameters * p.gatherBytes + (x.paddedParameters * (p.stateBytesPerParameter - p.gatherBytes)) / x.shardSize
    : (x.paddedParameters * p.stateBytesPerParameter) / x.shardSize;
  const gatheredUnits = x.gathersParameters && x.shardSize > 1 ? (x.prefetchDepth + 1) * x.largestUnit * p.gatherBytes : 0;
  const gradientBuffer = x.largestUnit * Math.max(p.gatherBytes, p.reduceBytes);
  const activations = activationBytes(x.model, x.microBatch, x.sequence, x.recompute, x.attention);
  const runtime = x.runtimeReserveBytes;
  const total = modelStates + gatheredUnits + gradientBuffer + activations + runtime;
  const usable = x.deviceMemoryBytes * (1 - x.fragmentation);
  return { modelStates, gatheredUnits, gradientBuffer, activations, runtime, total, usable, fits: total <= usable };
}
