/**
 * createGroups(): the MiCS communicators of this rank, made by split from the world.
 *
 * The layout comes from planGroups (pure, lib/comm/groups.ts); this module only
 * turns it into communicators. Split is collective: every world rank calls
 * createGroups with the same options.
 */
import { Communicator, ranksByValue } from './communicator';
import { MicsError, describeValue, invalidArgument, optionsObject } from '../core/errors';
import { planGroups, type GroupPlan, type HierarchicalOption, type RankGroups } from './groups';

/** Options of createGroups(). */
export interface CreateGroupsOptions {
  /** S: ranks that hold one replica of the model states (default 'auto': one node). */
  partitionSize?: number | 'auto';
  /** Two-stage all-gather when the partition group spans whole nodes (default true). */
  hierarchical?: HierarchicalOption;
}

/** The communicators MiCS uses, for one rank. */
export interface MicsGroups {
  /** The whole job. */
  world: Communicator;
  /** The plan every rank computed identically. */
  layout: GroupPlan;
  /** This rank's groups and positions in the plan. */
  mine: RankGroups;
  /** The S ranks that together hold one replica (parameter all-gather, gradient reduce-scatter). */
  partition: Communicator;
  /** The R ranks holding the same slice in every replica (gradient all-reduce at the boundary). */
  replication: Communicator;
  /** Hierarchical only: this node's G ranks of the partition group (stage 2). */
  intraNode?: Communicator;
  /** Hierarchical only: the N ranks with the same local index across the group's nodes (stage 1). */
  interNode?: Communicator;
}

/**
 * G from the world's node ranks. The layout must be node-major (rank = node*G +
 * local rank, as the launcher assigns), with every node but the last holding G ranks.
 */
export function ranksPerNodeOf(nodes: readonly number[]): number {
  const ranksPerNode = nodes.filter((n) => n === nodes[0]).length;
  for (let r = 0; r < nodes.length; r++) {
    if (nodes[r] - nodes[0] !== Math.floor(r / ranksPerNode)) {
      throw invalidArgument(
        `createGroups needs a node-major rank layout (rank = node x ${ranksPerNode} + local rank) but rank ${r} is on node ${nodes[r]}: ` +
          `node ranks are [${nodes.join(', ')}]`,
      );
    }
  }
  return ranksPerNode;
}

/** Creates the partition, replication (and, when hierarchical, intra/inter-node) communicators. */
export async function createGroups(world: Communicator, given: CreateGroupsOptions = {}): Promise<MicsGroups> {
  if (!(world instanceof Communicator)) throw invalidArgument(`createGroups: world ${describeValue(world)} is not valid: use the Communicator of init()`);
  const options = optionsObject('createGroups', given, {});
  const partitionSize = options.partitionSize ?? 'auto';
  const hierarchical = options.hierarchical ?? true;
  // Ranks that asked for different layouts would split into groups that do not fit
  // together, some of them without an error: every rank checks every rank's request first.
  const request = `partitionSize ${describeValue(partitionSize)}, hierarchical ${describeValue(hierarchical)}`;
  const requests = await world.valuesOfEveryRank('createGroups', request);
  if (requests.some((r) => r !== request)) {
    // Every rank takes this branch. The barrier keeps world rank 0, whose process may host
    // the store, from closing it (by exiting on this error) while a peer still reads it.
    await world.barrier().catch(() => undefined);
    throw new MicsError(
      `createGroups: the ranks asked for different groups (${[...ranksByValue(requests)].map(([r, ranks]) => `world ranks [${ranks.join(', ')}]: ${r}`).join('; ')}): every rank must pass the same options`,
      'MICS_MISMATCH',
      { rank: world.rank, group: world.name, op: 'createGroups' },
    );
  }
  const layout = planGroups({
    worldSize: world.size,
    ranksPerNode: ranksPerNodeOf(world.nodes),
    partitionSize,
    hierarchical,
  });
  const mine = layout.forRank(world.rank);
  const S = layout.partitionSize;
  // A split that fails leaves the ones before it made, which the caller never sees:
  // they are destroyed here before the error goes on.
  const made: Communicator[] = [];
  const keep = (comm: Communicator | null): Communicator | undefined => {
    if (comm) made.push(comm);
    return comm ?? undefined;
  };
  try {
    // Every split is collective over the world, in the same order on every rank.
    const partition = keep(await world.split(mine.partitionIndex, mine.partitionRank, { name: `partition[${mine.partitionIndex}]` }));
    const replication = keep(await world.split(mine.partitionRank, mine.replicationRank, { name: `replication[${mine.partitionRank}]` }));
    const groups: MicsGroups = { world, layout, mine, partition: partition!, replication: replication! };
    if (layout.hierarchical) {
      const G = layout.ranksPerNode;
      groups.intraNode = keep(await world.split(mine.node, mine.localRank, { name: `intraNode[${mine.node}]` }));
      const interColor = mine.partitionIndex * G + mine.localRank;
      groups.interNode = keep(
        await world.split(interColor, mine.interNodeRank ?? 0, { name: `interNode[${mine.partitionIndex}.${mine.localRank}]` }),
      );
    }
    if (groups.partition.size !== S) {
      throw new MicsError(`internal: partition group has ${groups.partition.size} ranks, expected ${S}`, 'MICS_INTERNAL');
    }
    return groups;
  } catch (err) {
    for (const comm of made.reverse()) comm.destroy();
    throw err;
  }
}

/** Destroys every communicator createGroups made (not the world). */
export function destroyGroups(groups: MicsGroups): void {
  if (typeof groups !== 'object' || groups === null) {
    throw invalidArgument(`destroyGroups: ${describeValue(groups)} is not valid: use the MicsGroups of createGroups()`);
  }
  for (const comm of [groups.interNode, groups.intraNode, groups.replication, groups.partition]) comm?.destroy();
}
