/** The engine's public option and result types. */
import type { HierarchicalOption } from '../comm/groups';
import type { DeviceTensor } from '../cuda/device-tensor';
import type { FloatDType } from './backend';
import type { ParameterSpec, UnitLayout, UnitOptions } from './layout';
import type { LossScalerState, LossScalingOptions } from './loss-scaler';
import type { OptimizerSpec, ParamGroupSpec } from './optimizer';
import type { ScheduleFunction, ScheduleSpec } from './schedule';

/**
 * A buffer of the engine: on the CPU backend a Float32Array (fp32) or a Uint16Array
 * of bf16/f16 bits (mixed precision); on NCCL a DeviceTensor.
 */
export type EngineTensor = Float32Array | Uint16Array | DeviceTensor;

/** Where the initial parameter values come from. */
export type EngineInit =
  | {
      /** Every parameter drawn from its `init` with this seed (default 0): identical on every rank. */
      seed?: number;
    }
  | {
      /** Full values of every parameter, by name (flat, row-major). */
      weights: Readonly<Record<string, ArrayLike<number>>>;
      /**
       * 'every-rank' (default): every rank passes the same weights and keeps its slice.
       * 'rank0': only world rank 0's weights count; they are broadcast (other ranks may pass {}).
       */
      from?: 'every-rank' | 'rank0';
    };

/** Training precision: the dtype of the gathered parameters and of the gradients handed back. */
export type Precision = 'fp32' | 'bf16' | 'fp16';

/** Options of createEngine. */
export interface EngineOptions {
  /** The model's parameters, in the order units are built and gathered. */
  parameters: readonly ParameterSpec[];
  /** How parameters without an explicit unit are grouped into units. */
  units?: UnitOptions;
  optimizer: OptimizerSpec;
  /** Per-group overrides (e.g. `{params: /bias|norm/, weightDecay: 0}`); the first match wins. */
  paramGroups?: readonly ParamGroupSpec[];
  /** Learning-rate schedule: data (stored by checkpoints) or a function of the 1-based step. */
  schedule?: ScheduleSpec | ScheduleFunction;
  /** Clip the global gradient norm to this value (torch.nn.utils.clip_grad_norm_); off when absent. */
  clipGradNorm?: number;
  /** Micro-steps per optimizer step (gradient accumulation). Default 1. */
  accumulationSteps?: number;
  /**
   * 'fp32' (default); 'bf16' or 'fp16': half-precision gathered parameters and
   * gradients, fp32 master weights, optimizer states and gradient accumulators.
   */
  precision?: Precision;
  /** The dtype of the per-micro-step reduce-scatter (default 'f32'; 'bf16' halves its bytes). */
  reduceDtype?: FloatDType;
  /** Dynamic loss scaling (fp16 only): DeepSpeed's rules and defaults. */
  lossScaling?: LossScalingOptions;
  /** Units all-gathered ahead of the one asked for, in the direction of travel. Default 1. */
  prefetch?: number;
  /**
   * Units of at most this many elements stay gathered after release() until the next
   * optimizer step (DeepSpeed's stage3_param_persistence_threshold). Default 1e5.
   */
  persistenceThreshold?: number;
  /** Initial values. Default: seeded, seed 0. */
  init?: EngineInit;
  /** Shards are padded to a multiple of this many elements (default 16). */
  alignment?: number;
  /** Record a timeline of every op (engine.writeTrace()). Default false. */
  trace?: boolean;
  /**
   * With createEngine(world, ...) only: S, the ranks that together hold one replica
   * of the model states. 'auto' (the default there) takes the smallest S whose
   * memory holds the model states and the units in flight (MiCS' scale-aware
   * partitioning; engine.partitionChoice says why); a number is used as given.
   */
  partitionSize?: number | 'auto';
  /** With createEngine(world, ...) only: createGroups' `hierarchical` (default true). */
  hierarchical?: HierarchicalOption;
  /**
   * With partitionSize 'auto': bytes one rank may use. Default: its device's memory
   * (nccl), or the host's memory divided by the ranks on the node (cpu). The
   * smallest value over the ranks decides.
   */
  deviceMemoryBytes?: number;
}

/** A gathered unit: its full parameters, as views by name into one flat buffer. */
export interface GatheredUnit<T extends EngineTensor = Float32Array> {
  readonly unit: UnitLayout;
  /** The whole gathered buffer (padded). */
  readonly flat: T;
  /** Each parameter's elements (flat, row-major), sharing `flat`'s memory. */
  readonly params: Readonly<Record<string, T>>;
}

/** A zero-filled gradient buffer of a unit (in the reduce dtype), to fill and hand back with reduceGradients(unit). */
export interface GradientBuffer<T extends EngineTensor = Float32Array> {
  readonly unit: UnitLayout;
  readonly flat: T;
  readonly grads: Readonly<Record<string, T>>;
}

/** What step() resolves to. */
export interface StepResult {
  /** True when this call was an accumulation boundary and the optimizer ran. */
  stepped: boolean;
  /** True when this call was a boundary whose update was skipped (fp16 overflow on some rank). */
  skipped: boolean;
  /** Optimizer steps taken so far. */
  step: number;
  /** Micro-steps into the current accumulation window (0 right after a boundary). */
  microStep: number;
  /** The default group's learning rate used by this step (or by the next one, when not stepped). */
  lr: number;
  /** The loss scale for the next micro-step (1 unless fp16). */
  lossScale: number;
  /** The global norm of the mean gradient before clipping (at a boundary that was not skipped). */
  gradNorm?: number;
  /** The factor the gradients were multiplied by to clip them (1 when not clipped). */
  clipCoefficient?: number;
}

/** Per-rank bytes of the engine's buffers. */
export interface EngineMemory {
  /** The rank's parameter shards in the gather dtype (fp32: they are also the master weights). */
  parameterShards: number;
  /** Separate fp32 master weights (0 in fp32, where the parameter shards are the master). */
  masterWeights: number;
  /** AdamW's exp_avg and exp_avg_sq, or SGD's momentum buffer (fp32). */
  optimizerStates: number;
  /** The fp32 gradient-shard accumulators. */
  gradientAccumulators: number;
  /** parameterShards + masterWeights + optimizerStates + gradientAccumulators. */
  modelStates: number;
  /** Full-unit buffers in use now (gathered parameters, gradients, reduction temporaries). */
  unitBuffersLive: number;
  /** The most unitBuffersLive has been. */
  unitBuffersPeak: number;
  /** Full-unit buffers cached for reuse. */
  unitBuffersCached: number;
  /** Bytes of the largest gathered unit. */
  largestUnit: number;
}

/** @internal A rank's model states and counters, as checkpoints save and load them (host copies, fp32). */
export interface EngineState {
  /** Optimizer steps taken. */
  step: number;
  /** fp16 only. */
  lossScaler?: LossScalerState;
  /** This rank's shard space (engine.layout.shardNumel elements each). */
  tensors: {
    master: Float32Array;
    expAvg?: Float32Array;
    expAvgSq?: Float32Array;
    momentum?: Float32Array;
  };
}
