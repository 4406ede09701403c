/**
 * `partitionSize: 'auto'` for the engine: MiCS' scale-aware partitioning (the
 * smallest partition group whose memory holds the model states), decided by the
 * planner's choosePartitionSize from what the engine knows: the model's size and
 * largest unit, the precision and optimizer (state bytes per parameter), the
 * prefetch depth and the memory of one rank.
 *
 * Every rank must pick the same S (the groups are made by a collective split), so
 * the memory is agreed on first: the smallest rank's counts.
 */
import os from 'node:os';
import { elementBytes } from '../core/dtypes';
import { describeValue, invalidArgument, valueText } from '../core/errors';
import type { Communicator } from '../comm/communicator';
import { ranksPerNodeOf } from '../comm/mics-groups';
import { cudaTotalMemory } from '../cuda/device-tensor';
import { choosePartitionSize, type PartitionChoice } from '../plan/planner';
import { allReduceHostValues, gatherDtypeOf } from './backend';
import { planLayout } from './layout';
import { resolveOptimizer } from './optimizer';
import type { EngineOptions } from './types';

/**
 * Model-state bytes per parameter before sharding, as this engine allocates them:
 * the parameter shard in the gather dtype, an fp32 master copy (half precision
 * only), the fp32 gradient accumulator and the optimizer's fp32 states (AdamW: 2,
 * SGD: 1 with momentum, else 0). bf16 + AdamW: 2 + 4 + 4 + 8 = 18.
 */
export function stateBytesPerParameter(options: Pick<EngineOptions, 'precision' | 'optimizer'>): number {
  const gatherDtype = gatherDtypeOf(options.precision);
  const optimizer = resolveOptimizer(options.optimizer);
  const optimizerStates = optimizer.type === 'adamw' ? 2 : optimizer.momentum !== 0 ? 1 : 0;
  const master = gatherDtype === 'f32' ? 0 : 4;
  return elementBytes(gatherDtype) + master + 4 + 4 * optimizerStates;
}

/** What this rank may plan with when the caller does not say: its device's memory on nccl, an equal share of the host's on cpu. */
function localMemoryBytes(world: Communicator, ranksPerNode: number): number {
  if (world.backend === 'nccl') return cudaTotalMemory(world.device ?? 0);
  return os.totalmem() / ranksPerNode;
}

/** The smallest value every world rank holds (a collective over the world). */
async function worldMinimum(world: Communicator, value: number): Promise<number> {
  const values = Float64Array.of(value);
  await allReduceHostValues(world, values, 'min');
  return values[0];
}

/**
 * The partition size for createEngine(world, options): `options.partitionSize`
 * when it is a number (checked by createGroups), else the planner's choice.
 * Collective over the world when it plans (every rank must call it).
 */
export async function choosePartitionForEngine(world: Communicator, options: EngineOptions): Promise<PartitionChoice | number> {
  const requested = options.partitionSize ?? 'auto';
  if (requested !== 'auto') {
    if (typeof requested !== 'number') {
      throw invalidArgument(`partitionSize ${describeValue(requested)} is not valid: use an integer that divides the world size, or 'auto'`);
    }
    return requested;
  }
  const given = options.deviceMemoryBytes;
  if (given !== undefined && !(typeof given === 'number' && Number.isFinite(given) && given > 0)) {
    throw invalidArgument(`deviceMemoryBytes ${valueText(given)} is not valid: use a positive number of bytes (memory one rank may use)`);
  }
  const ranksPerNode = ranksPerNodeOf(world.nodes);
  // The layout at S = 1 gives the model's size and its largest unit before padding.
  const layout = planLayout(options.parameters, 1, { ...options.units, alignment: options.alignment });
  const stateBytes = stateBytesPerParameter(options);
  const memory = await worldMinimum(world, given ?? localMemoryBytes(world, ranksPerNode));
  return choosePartitionSize({
    parameterCount: layout.numel,
    worldSize: world.size,
    ranksPerNode,
    deviceMemoryBytes: memory,
    stateBytesPerParameter: stateBytes,
    largestUnitElements: Math.max(...layout.units.map((u) => u.numel)),
    gatheredBytesPerElement: elementBytes(gatherDtypeOf(options.precision)),
    gradientBytesPerElement: elementBytes(options.reduceDtype ?? 'f32'),
    prefetchDepth: options.prefetch ?? 1,
  });
}
