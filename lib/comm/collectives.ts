/**
 * The package-level collective API. Each function takes a Communicator, or the
 * MicsGroups of createGroups(); with MicsGroups the op runs in the group MiCS uses
 * it in (override with `group`):
 * - allGather: the partition group, hierarchically when the groups are hierarchical
 *   (turn off per call with `hierarchical: false`);
 * - reduceScatter: the partition group (per-micro-step gradient sync), hierarchically
 *   when the groups are hierarchical (reduce inside the node first, then across
 *   nodes on 1/G of the bytes; not for `avg`; off per call with `hierarchical: false`);
 * - allReduce: the replication group (the accumulation-boundary hop of two-hop sync);
 * - broadcast, barrier: the partition group.
 * dtype follows the arrays; in place follows NCCL's layout convention.
 */
import type { AccumulateOptions, BroadcastOptions, CollectiveOptions, Communicator, ReduceOptions } from './communicator';
import { Communicator as CommunicatorClass } from './communicator';
import { isTensor, type Tensor } from './tensor';
import { describeValue, invalidArgument, optionsObject, rejecting } from '../core/errors';
import { hierarchicalAllGather, hierarchicalReduceScatter } from './hierarchical';
import type { MicsGroups } from './mics-groups';

/** Which MiCS group an op runs in when given MicsGroups. */
export type GroupName = 'world' | 'partition' | 'replication' | 'intraNode' | 'interNode';

/** Options naming the group of a MicsGroups target. */
export interface GroupSelection {
  group?: GroupName;
}

/** Options of allGather. */
export interface AllGatherOptions extends CollectiveOptions, GroupSelection {
  /** With MicsGroups: use the two-stage algorithm when the groups allow it (default true). */
  hierarchical?: boolean;
}

/** Options of reduceScatter (`accumulate`: add into output; CPU backend). */
export interface ReduceScatterOptions extends AccumulateOptions, GroupSelection {
  /**
   * With MicsGroups: use the two-stage algorithm when the groups allow it (default
   * true; `avg` always runs flat). Integer results, max and min equal the flat
   * ones bit for bit; float sums and products combine each node's ranks first, then
   * the nodes (docs/groups.md).
   */
  hierarchical?: boolean;
}

/** A communicator or the MiCS groups of this rank. */
export type CollectiveTarget = Communicator | MicsGroups;

const GROUP_NAMES: readonly GroupName[] = ['world', 'partition', 'replication', 'intraNode', 'interNode'];

function pick(target: CollectiveTarget, group: GroupName | undefined, fallback: GroupName): Communicator {
  if (target instanceof CommunicatorClass) {
    if (group !== undefined) throw invalidArgument(`option group ${describeValue(group)} needs MicsGroups, not a Communicator`);
    return target;
  }
  if (typeof target !== 'object' || target === null || !(target.world instanceof CommunicatorClass)) {
    throw invalidArgument(`target ${describeValue(target)} is not valid: use a Communicator or the MicsGroups of createGroups()`);
  }
  const name = group ?? fallback;
  if (!GROUP_NAMES.includes(name)) {
    throw invalidArgument(`option group ${describeValue(name)} is not valid: use one of ${GROUP_NAMES.join(', ')}`);
  }
  const comm = target[name];
  if (!comm) {
    throw invalidArgument(
      `group '${name}' does not exist here: ${name === 'intraNode' || name === 'interNode' ? 'the groups are not hierarchical' : 'use world, partition or replication'}`,
    );
  }
  return comm;
}

/** The hierarchy's communicators when an op on the partition group should use them. */
function hierarchyOf(
  target: CollectiveTarget,
  options: GroupSelection & { hierarchical?: boolean },
): { interNode: Communicator; intraNode: Communicator } | undefined {
  if (target instanceof CommunicatorClass) return undefined;
  if (options.group !== undefined && options.group !== 'partition') return undefined;
  if (options.hierarchical === false || !target.intraNode || !target.interNode) return undefined;
  return { interNode: target.interNode, intraNode: target.intraNode };
}

/** Gathers every rank's input into output (size x input). See the module notes for MicsGroups. */
export function allGather(target: CollectiveTarget, input: Tensor, output: Tensor, options: AllGatherOptions = {}): Promise<void> {
  return rejecting(() => {
    const checked = optionsObject('allGather', options, {});
    const comm = pick(target, checked.group, 'partition');
    const hierarchy = hierarchyOf(target, checked);
    if (hierarchy) return hierarchicalAllGather(hierarchy, input, output, checked);
    return comm.allGather(input, output, checked);
  });
}

/** Reduces input (size x output) and scatters: rank r keeps block r. See the module notes for MicsGroups. */
export function reduceScatter(target: CollectiveTarget, input: Tensor, output: Tensor, options: ReduceScatterOptions = {}): Promise<void> {
  return rejecting(() => {
    const checked = optionsObject('reduceScatter', options, {});
    const comm = pick(target, checked.group, 'partition');
    const hierarchy = checked.op === 'avg' ? undefined : hierarchyOf(target, checked);
    if (hierarchy) return hierarchicalReduceScatter(hierarchy, input, output, checked);
    return comm.reduceScatter(input, output, checked);
  });
}

/** All-reduce, in place or into output. */
export function allReduce(target: CollectiveTarget, buffer: Tensor, options?: ReduceOptions & GroupSelection): Promise<void>;
export function allReduce(
  target: CollectiveTarget,
  input: Tensor,
  output: Tensor,
  options?: ReduceOptions & GroupSelection,
): Promise<void>;
export function allReduce(
  target: CollectiveTarget,
  input: Tensor,
  second?: Tensor | (ReduceOptions & GroupSelection),
  third?: ReduceOptions & GroupSelection,
): Promise<void> {
  return rejecting(() => {
    const hasOutput = isTensor(second);
    const options = optionsObject('allReduce', (hasOutput ? third : second) as (ReduceOptions & GroupSelection) | undefined, {});
    const comm = pick(target, options.group, 'replication');
    return hasOutput ? comm.allReduce(input, second as Tensor, options) : comm.allReduce(input, options);
  });
}

/** Broadcast from options.root (default 0), in place or into output. */
export function broadcast(target: CollectiveTarget, buffer: Tensor, options?: BroadcastOptions & GroupSelection): Promise<void>;
export function broadcast(
  target: CollectiveTarget,
  input: Tensor,
  output: Tensor,
  options?: BroadcastOptions & GroupSelection,
): Promise<void>;
export function broadcast(
  target: CollectiveTarget,
  input: Tensor,
  second?: Tensor | (BroadcastOptions & GroupSelection),
  third?: BroadcastOptions & GroupSelection,
): Promise<void> {
  return rejecting(() => {
    const hasOutput = isTensor(second);
    const options = optionsObject('broadcast', (hasOutput ? third : second) as (BroadcastOptions & GroupSelection) | undefined, {});
    const comm = pick(target, options.group, 'partition');
    return hasOutput ? comm.broadcast(input, second as Tensor, options) : comm.broadcast(input, options);
  });
}

/** Resolves once every rank of the group has called barrier(). */
export function barrier(target: CollectiveTarget, options: CollectiveOptions & GroupSelection = {}): Promise<void> {
  return rejecting(() => {
    const checked = optionsObject('barrier', options, {});
    return pick(target, checked.group, 'partition').barrier(checked);
  });
}
