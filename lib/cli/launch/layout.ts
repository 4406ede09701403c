/**
 * Rank assignment: node-major over the agents in node-rank order, and inside an agent over its
 * emulated nodes, so global rank = ranks of all lower (emulated) nodes + local rank (torchrun's rule).
 */
import { LaunchError } from './errors';

/** What one agent announces at the rendezvous. */
export interface NodeRecord {
  /** The agent's node rank (--node-rank). */
  readonly nodeRank: number;
  /** Host name, for the summary and for messages. */
  readonly host: string;
  /** Ranks this agent runs in total. */
  readonly nproc: number;
  /** Emulated nodes the agent splits its ranks into (1 = a plain node). */
  readonly emulateNodes: number;
  /** Run id and node count the agent was started with: checked to be the same everywhere. */
  readonly runId: string;
  readonly nnodes: number;
  readonly maxRestarts: number;
}

/** One rank this agent runs, and where it sits in the job. */
export interface RankPlan {
  /** Global rank (RANK). */
  readonly rank: number;
  /** Rank inside its (emulated) node (LOCAL_RANK). */
  readonly localRank: number;
  /** Ranks in its (emulated) node (LOCAL_WORLD_SIZE). */
  readonly localWorldSize: number;
  /** Its (emulated) node's rank (GROUP_RANK). */
  readonly groupRank: number;
  /** Index among this agent's ranks (0..nproc-1): the device index on this machine. */
  readonly agentIndex: number;
}

/** The whole job as one agent sees it after the rendezvous. */
export interface JobLayout {
  readonly worldSize: number;
  /** Number of (emulated) nodes: GROUP_WORLD_SIZE. */
  readonly groupWorldSize: number;
  /** The ranks this agent runs, by agentIndex. */
  readonly ranks: readonly RankPlan[];
  /** Every node's record, by node rank. */
  readonly nodes: readonly NodeRecord[];
}

/**
 * Checks that the records describe one job (one record per node rank 0..nnodes-1, same run id,
 * node count and restart budget) and assigns ranks. Throws a {@link LaunchError} naming the
 * node that disagrees.
 */
export function planJob(records: readonly NodeRecord[], myNodeRank: number): JobLayout {
  const mine = records.find((r) => r.nodeRank === myNodeRank);
  if (!mine) throw new LaunchError(`node ${myNodeRank} is missing from the rendezvous`);
  const sorted = [...records].sort((a, b) => a.nodeRank - b.nodeRank);
  sorted.forEach((r, i) => {
    if (r.nodeRank !== i) throw new LaunchError(`the rendezvous has node ranks ${sorted.map((s) => s.nodeRank).join(',')}, expected 0..${mine.nnodes - 1}`);
    const diffs: string[] = [];
    if (r.runId !== mine.runId) diffs.push(`run id '${r.runId}' (this node: '${mine.runId}')`);
    if (r.nnodes !== mine.nnodes) diffs.push(`--nnodes ${r.nnodes} (this node: ${mine.nnodes})`);
    if (r.maxRestarts !== mine.maxRestarts) diffs.push(`--max-restarts ${r.maxRestarts} (this node: ${mine.maxRestarts})`);
    if (diffs.length > 0) throw new LaunchError(`node ${r.nodeRank} (${r.host}) was started with ${diffs.join(', ')}`);
    if (r.nproc < 1 || r.emulateNodes < 1 || r.nproc % r.emulateNodes !== 0) {
      throw new LaunchError(`node ${r.nodeRank} (${r.host}) announced ${r.nproc} rank(s) in ${r.emulateNodes} emulated node(s)`);
    }
  });
  if (sorted.length !== mine.nnodes) {
    throw new LaunchError(`the rendezvous has ${sorted.length} node(s), expected ${mine.nnodes}`);
  }
  let rankBase = 0;
  let groupBase = 0;
  let ranks: RankPlan[] = [];
  for (const r of sorted) {
    if (r.nodeRank === myNodeRank) {
      const per = r.nproc / r.emulateNodes;
      ranks = Array.from({ length: r.nproc }, (_, i) => ({
        rank: rankBase + i,
        localRank: i % per,
        localWorldSize: per,
        groupRank: groupBase + Math.floor(i / per),
        agentIndex: i,
      }));
    }
    rankBase += r.nproc;
    groupBase += r.emulateNodes;
  }
  return { worldSize: rankBase, groupWorldSize: groupBase, ranks, nodes: sorted };
}
