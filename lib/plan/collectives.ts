/**
 * Alpha-beta cost of the collectives this package runs, per link class.
 *
 * A ring collective over n ranks moves (n-1)/n of its buffer through every rank
 * (all-gather, reduce-scatter) or twice that (all-reduce), pipelined in chunks, so
 * its time is a latency term plus a bandwidth term:
 *
 *   t = collectiveLatency + (ring hops inside nodes) x intra.hopLatency
 *                         + (ring hops between nodes) x inter.hopLatency
 *       + max(bytes over the node's NICs / inter.bandwidth, bytes per GPU / intra.bandwidth)
 *
 * (NCCL's tuning model has the same form: src/graph/tuning.cc.) A ring laid out
 * node-major crosses each node boundary once per step, so per step one piece of
 * M/n bytes leaves every node; groups that run at the same time on one node
 * share its NICs ("link sharing"): when every rank of a node is in a different
 * group (replication groups, the inter-node stage of the hierarchical all-gather)
 * each group gets 1/G of the node's bandwidth. On fabrics whose bandwidth falls
 * with the nodes a ring spans (EFA), the inter-node bandwidth is that of a ring
 * over this group's nodes (see `linkBandwidth`).
 *
 * @packageDocumentation
 */
import { ALL_GATHER_PIPELINE_CHUNKS, pipelineChunkElements, REDUCE_SCATTER_PIPELINE_CHUNKS } from '../core/pipeline';
import { linkBandwidth, type ClusterPreset } from './presets';

/** The time of one collective and the bytes it moves. */
export interface CollectiveCost {
  /** Seconds, the same on every participating rank. */
  readonly time: number;
  /** Latency part of `time`. */
  readonly latency: number;
  /** Bytes one GPU moves over intra-node links. */
  readonly intraBytesPerGpu: number;
  /** Bytes that leave one node over its NICs (all groups running on it together). */
  readonly interBytesPerNode: number;
}

/** Where the ranks of a group sit. */
export interface GroupLayout {
  /** Ranks in the group. */
  readonly ranks: number;
  /** Ranks of the group on each node it touches (the group covers ranks / perNode nodes). */
  readonly perNode: number;
}

export type RingOp = 'allGather' | 'reduceScatter' | 'allReduce';

const ZERO: CollectiveCost = Object.freeze({ time: 0, latency: 0, intraBytesPerGpu: 0, interBytesPerNode: 0 });

/**
 * A ring collective of `bytes` (all-gather: the gathered output; reduce-scatter:
 * the input; all-reduce: the buffer) over `group`, while every rank of every node
 * runs the same collective in its own group (the usual case in data parallelism).
 */
export function ringCollective(cluster: ClusterPreset, op: RingOp, bytes: number, group: GroupLayout): CollectiveCost {
  const n = group.ranks;
  if (n <= 1 || bytes <= 0) return ZERO;
  const g = Math.min(group.perNode, n);
  const nodes = Math.ceil(n / g);
  const factor = op === 'allReduce' ? 2 : 1;
  const steps = factor * (n - 1);
  const interSteps = factor * (nodes - 1);
  let latency = cluster.collectiveLatency + (steps - interSteps) * cluster.intra.hopLatency + interSteps * cluster.inter.hopLatency;
  if (op === 'allReduce' && nodes > 1) latency *= cluster.allReduceLatencyFactor;
  const perRank = (steps / n) * bytes;
  // Combining received pieces (reduce-scatter, and the first half of an all-reduce) costs CPU ranks time of its own.
  const reduceTime = op !== 'allGather' && cluster.reduceBandwidth ? ((n - 1) / n) * bytes / cluster.reduceBandwidth : 0;
  if (nodes === 1) {
    return { time: latency + perRank / cluster.intra.bandwidth + reduceTime, latency, intraBytesPerGpu: perRank, interBytesPerNode: 0 };
  }
  // One ring edge per node carries perRank bytes; G/g groups of this node share the NICs.
  const groupsPerNode = cluster.gpusPerNode / g;
  const interBytesPerNode = perRank * groupsPerNode;
  const interTime = interBytesPerNode / linkBandwidth(cluster.inter, nodes);
  const intraBytesPerGpu = (perRank * (g - 1)) / g;
  const intraTime = intraBytesPerGpu / cluster.intra.bandwidth;
  return { time: latency + Math.max(interTime, intraTime) + reduceTime, latency, intraBytesPerGpu, interBytesPerNode };
}

/** Pipeline chunks of a shard of `shardBytes`, as the package cuts it (core/pipeline.ts). */
export function pipelineChunks(shardBytes: number, chunks: number): number {
  if (shardBytes <= 0) return 1;
  return Math.ceil(shardBytes / pipelineChunkElements(shardBytes, 1, chunks));
}

/**
 * Two stages over the pipeline chunks of a shard of `shardBytes`, stage 2 of piece k
 * beside stage 1 of piece k+1 (as the package runs its hierarchical collectives),
 * plus a copy of `copyBytes` read and written: every piece pays both stages'
 * latency and 1/chunks of their bandwidth time; after the first piece the slower
 * stage sets the pace. One chunk: the stages one after the other.
 */
function pipelinedTwoStages(
  cluster: ClusterPreset,
  first: CollectiveCost,
  second: CollectiveCost,
  copyBytes: number,
  shardBytes: number,
  chunkCount: number,
): CollectiveCost {
  const chunks = pipelineChunks(shardBytes, chunkCount);
  const piece = (c: CollectiveCost): number => c.latency + (c.time - c.latency) / chunks;
  const a = piece(first);
  const b = piece(second);
  const pacing = a >= b ? first : second;
  return {
    time: copyBytes / cluster.device.memoryBandwidth + a + b + (chunks - 1) * Math.max(a, b),
    latency: first.latency + second.latency + (chunks - 1) * pacing.latency,
    intraBytesPerGpu: first.intraBytesPerGpu + second.intraBytesPerGpu,
    interBytesPerNode: first.interBytesPerNode + second.interBytesPerNode,
  };
}

/**
 * The two-stage all-gather of MiCS for a partition group of N nodes x G ranks and
 * a gathered output of `bytes`: stage 1 across nodes among the ranks with the same
 * local index (G groups of N ranks share each node's NICs), the re-arrangement
 * copy of the N pieces into their slots, stage 2 inside the node as one grouped
 * call; pipelined in chunks of the shard like the package's. Inter-node bytes per
 * node: (S-G)/S x bytes.
 */
export function hierarchicalAllGather(cluster: ClusterPreset, bytes: number, nodes: number): CollectiveCost {
  const G = cluster.gpusPerNode;
  if (nodes <= 1) return ringCollective(cluster, 'allGather', bytes, { ranks: G, perNode: G });
  const stage1 = ringCollective(cluster, 'allGather', bytes / G, { ranks: nodes, perNode: 1 });
  const stage2 = ringCollective(cluster, 'allGather', bytes, { ranks: G, perNode: G });
  // The N pieces are read and written twice (into a staging buffer and out of it).
  return pipelinedTwoStages(cluster, stage1, stage2, 4 * (bytes / G), bytes / (nodes * G), ALL_GATHER_PIPELINE_CHUNKS);
}

/**
 * The two-stage reduce-scatter this package runs for a partition group of N nodes x
 * G ranks and an input of `bytes`: the packing copy of the input (each chunk of every
 * block into one buffer the node's ranks read in place), stage 1 inside the node on
 * all of it, stage 2 across nodes among the ranks with the same local index on 1/G of
 * it (G groups of N ranks share each node's NICs); pipelined in chunks of the shard.
 * Inter-node bytes per node: (S-G)/S x bytes, as the all-gather's.
 */
export function hierarchicalReduceScatter(cluster: ClusterPreset, bytes: number, nodes: number): CollectiveCost {
  const G = cluster.gpusPerNode;
  if (nodes <= 1) return ringCollective(cluster, 'reduceScatter', bytes, { ranks: G, perNode: G });
  const stage1 = ringCollective(cluster, 'reduceScatter', bytes, { ranks: G, perNode: G });
  const stage2 = ringCollective(cluster, 'reduceScatter', bytes / G, { ranks: nodes, perNode: 1 });
  return pipelinedTwoStages(cluster, stage1, stage2, 2 * bytes, bytes / (nodes * G), REDUCE_SCATTER_PIPELINE_CHUNKS);
}

/** Adds costs of collectives that run one after another. */
export function addCosts(a: CollectiveCost, b: CollectiveCost): CollectiveCost {
  return {
    time: a.time + b.time,
    latency: a.latency + b.latency,
    intraBytesPerGpu: a.intraBytesPerGpu + b.intraBytesPerGpu,
    interBytesPerNode: a.interBytesPerNode + b.interBytesPerNode,
  };
}

/** `cost` repeated `times` times. */
export function scaleCost(cost: CollectiveCost, times: number): CollectiveCost {
  return {
    time: cost.time * times,
    latency: cost.latency * times,
    intraBytesPerGpu: cost.intraBytesPerGpu * times,
    interBytesPerNode: cost.interBytesPerNode * times,
  };
}

export const NO_COST = ZERO;
