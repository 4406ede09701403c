/**
 * MiCS rank arithmetic: which ranks form partition, replication, intra-node and
 * inter-node groups, and where every piece of a hierarchical all-gather goes.
 *
 * Everything here is pure (no I/O, no addon) so it is unit-tested exhaustively and
 * the multi-process code (createGroups, the hierarchical all-gather) only has to
 * trust these numbers. Specification: the MiCS paper's group arithmetic and
 * hierarchical all-gather; the exact layout and the decisions for the awkward cases
 * are in docs/groups.md.
 *
 * Ranks are laid out node-major, as the launcher assigns them:
 * `node(rank) = floor(rank / ranksPerNode)`, `localRank = rank % ranksPerNode`.
 *
 * @packageDocumentation
 */

import { describeValue, invalidArgument, type MicsError } from '../core/errors';

/** Bad arguments to the planner: a MicsError with code MICS_INVALID_ARGUMENT. */
function argumentError(message: string): MicsError {
  return invalidArgument(message);
}

/**
 * The largest job planGroups (and so createGroups) plans: 2^20 = 1,048,576 ranks,
 * which is also the most ranks per node it takes. That is several times the largest
 * GPU clusters built so far (about 10^5 GPUs), and as many nodes as
 * `mics-launch --nnodes` takes; the plan of such a world (every group list, W entries
 * each) takes about a second and a few hundred MB. A larger worldSize or ranksPerNode
 * is a MicsError (MICS_INVALID_ARGUMENT), not an attempt to allocate the lists.
 * lib/plan plans at most this many GPUs too (PLAN_LIMITS.gpus).
 */
export const MAX_WORLD_SIZE = 2 ** 20;

/** At most this many sizes are spelled out in a message; longer lists are cut (the helpers return them all). */
const LISTED_SIZES = 32;

/**
 * Whether to use the two-stage (inter-node then intra-node) all-gather.
 *
 * - `true` (the default): use it when the layout allows it, otherwise plan flat and
 *   say why in {@link GroupPlan.flatReason}.
 * - `false`: never; `flatReason` says it was turned off (or, if the layout would not
 *   have allowed it anyway, gives that reason instead, since it is the more useful one).
 * - `'require'`: use it, and throw a MicsError (MICS_INVALID_ARGUMENT) with the reason when the
 *   layout does not allow it (for callers that would rather fail than silently
 *   lose the bandwidth saving).
 */
export type HierarchicalOption = boolean | 'require';

/** Input of {@link planGroups}. */
export interface PlanGroupsOptions {
  /** W: number of ranks in the job, a positive integer. */
  worldSize: number;
  /**
   * G: ranks per node (the launcher's LOCAL_WORLD_SIZE), a positive integer. May
   * exceed `worldSize` (one partly filled node). When it does not divide `worldSize`
   * the last node holds fewer ranks (see docs/groups.md, "Uneven last node").
   */
  ranksPerNode: number;
  /**
   * S: ranks that together hold one replica of the model states; must divide
   * `worldSize`. `'auto'` means one node: the largest divisor of W whose groups all
   * stay inside one node, i.e. `min(G, W)` when G divides W or W <= G, and
   * `gcd(W, G)` when the last node is uneven (G itself would not divide W).
   * A memory-based choice belongs to lib/plan and replaces this later.
   */
  partitionSize: number | 'auto';
  /** See {@link HierarchicalOption}; defaults to `true`. */
  hierarchical?: HierarchicalOption;
}

/**
 * Why a plan is flat, as a stable token (the sentence is in `flatReason`).
 *
 * - `single-node`: every partition group lies inside one node; there is no slow link
 *   to save (S <= G with S dividing G, or the whole world fits in one node).
 * - `uneven-nodes`: groups span nodes but W is not a multiple of G, so no partition
 *   size can give each group whole nodes (any S that is a multiple of G and divides
 *   W would make G divide W).
 * - `straddles-nodes`: W is a multiple of G but S is not, so groups cover parts of
 *   nodes and the node-local chunks would have different sizes.
 * - `disabled`: the layout allows hierarchy but the caller passed `hierarchical: false`.
 */
export type FlatCause = 'single-node' | 'uneven-nodes' | 'straddles-nodes' | 'disabled';

/** The groups one rank belongs to, and its position in each. */
export interface RankGroups {
  /** Global rank. */
  readonly rank: number;
  /** floor(rank / ranksPerNode). */
  readonly node: number;
  /** rank % ranksPerNode. */
  readonly localRank: number;
  /** Members of this rank's partition group, ascending. */
  readonly partition: readonly number[];
  /** Index of the partition group (which replica of the model states): floor(rank / S). */
  readonly partitionIndex: number;
  /** Position in the partition group = which 1/S slice this rank holds: rank % S. */
  readonly partitionRank: number;
  /** Members of this rank's replication group (same slice, every replica), ascending. */
  readonly replication: readonly number[];
  /** Position in the replication group; equals `partitionIndex`. */
  readonly replicationRank: number;
  /** Hierarchical only: the G ranks of this node inside the partition group. */
  readonly intraNode?: readonly number[];
  /** Hierarchical only: position in `intraNode`, the local index l; equals `localRank`. */
  readonly intraNodeRank?: number;
  /** Hierarchical only: the N ranks with the same local index across the group's nodes. */
  readonly interNode?: readonly number[];
  /** Hierarchical only: position in `interNode`, the node j within the partition group. */
  readonly interNodeRank?: number;
}

/**
 * The complete MiCS group layout of a job. All arrays are frozen: one plan is shared
 * by every caller of `forRank`, so nobody may change it under the others.
 */
export interface GroupPlan {
  /** W. */
  readonly worldSize: number;
  /** G. */
  readonly ranksPerNode: number;
  /** S (resolved when `'auto'` was asked for). */
  readonly partitionSize: number;
  /** R = W / S: number of replicas of the model states, the size of a replication group. */
  readonly replicationSize: number;
  /** ceil(W / G): the last node may hold fewer than G ranks. */
  readonly numNodes: number;
  /** R contiguous blocks {g*S .. g*S+S-1}, g = 0..R-1. */
  readonly partitionGroups: readonly (readonly number[])[];
  /** S columns {i, i+S, i+2S, ...}, i = 0..S-1; singletons when S == W (ZeRO-3). */
  readonly replicationGroups: readonly (readonly number[])[];
  /**
   * True when each partition group spans N = S/G >= 2 whole nodes and hierarchy was
   * not turned off; then `intraNodeGroups` / `interNodeGroups` are filled.
   */
  readonly hierarchical: boolean;
  /** N = S / G when hierarchical, otherwise undefined. */
  readonly nodesPerPartition?: number;
  /** Why the plan is flat, as a token; undefined when hierarchical. */
  readonly flatCause?: FlatCause;
  /** Why the plan is flat, in words (with the sizes that would work); undefined when hierarchical. */
  readonly flatReason?: string;
  /**
   * Hierarchical: each partition group cut into N consecutive chunks of G ranks (one
   * node each), in partition-group order, then chunk order. Empty when flat.
   */
  readonly intraNodeGroups: readonly (readonly number[])[];
  /**
   * Hierarchical: for each partition group and each offset l = 0..G-1, the ranks at
   * offset l of its N chunks. Ordered by partition group, then l. Empty when flat.
   */
  readonly interNodeGroups: readonly (readonly number[])[];
  /** The groups of one rank; throws a MicsError (MICS_INVALID_ARGUMENT) for a rank outside [0, W). */
  forRank(rank: number): RankGroups;
}

// ---------------------------------------------------------------------------
// Small helpers

/**
 * Sorted divisors of a positive integer n (the valid partition sizes for W = n).
 * @throws a MicsError (MICS_INVALID_ARGUMENT) when n is not a positive integer.
 */
export function divisors(n: number): number[] {
  if (!isPositiveInteger(n)) throw argumentError(`divisors: n must be a positive integer, got ${describeValue(n)}`);
  const small: number[] = [];
  const large: number[] = [];
  // Trial division up to sqrt(n): at most 1024 steps for a world of MAX_WORLD_SIZE ranks
  // (and under a second for the largest safe integer).
  for (let d = 1; d * d <= n; d++) {
    if (n % d === 0) {
      small.push(d);
      if (d * d !== n) large.push(n / d);
    }
  }
  return small.concat(large.reverse());
}

function isPositiveInteger(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 1;
}

/**
 * A list of partition sizes for a message. A world of MAX_WORLD_SIZE ranks can have
 * 240 divisors, so long lists keep their first and last sizes and say how many there are.
 */
export function listSizes(sizes: readonly number[]): string {
  if (sizes.length === 0) return 'none';
  if (sizes.length <= LISTED_SIZES) return sizes.join(', ');
  const head = sizes.slice(0, LISTED_SIZES - 4).join(', ');
  const tail = sizes.slice(-4).join(', ');
  return `${head}, ... (${sizes.length - LISTED_SIZES} more), ${tail} (${sizes.length} sizes in all)`;
}

function range(start: number, length: number): number[] {
  // A plain loop: Array.from with a callback is several times slower, and plans of
  // large worlds build W-sized lists several times over.
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = start + i;
  return out;
}

function frozenGroups(groups: number[][]): readonly (readonly number[])[] {
  for (const g of groups) Object.freeze(g);
  return Object.freeze(groups);
}

/**
 * True when some partition group holds ranks of two nodes. Groups start at multiples
 * of S and node boundaries sit at multiples of G, so (when there is a second node at
 * all) the group holding ranks G-1 and G crosses the first boundary exactly when S
 * does not divide G; and when S divides G, no boundary falls inside any group.
 */
function someGroupSpansNodes(worldSize: number, ranksPerNode: number, partitionSize: number): boolean {
  return worldSize > ranksPerNode && ranksPerNode % partitionSize !== 0;
}

/**
 * Partition sizes (divisors of W) whose every group lies inside one node: no
 * hierarchy needed. With G | W these are the divisors of G (that divide W); with an
 * uneven last node, the divisors of gcd(W, G); with W <= G, all divisors of W.
 */
export function singleNodePartitionSizes(worldSize: number, ranksPerNode: number): number[] {
  checkWorld(worldSize, ranksPerNode);
  return divisors(worldSize).filter((s) => !someGroupSpansNodes(worldSize, ranksPerNode, s));
}

/**
 * Partition sizes that give a hierarchical plan: S = N*G with N >= 2 and S | W.
 * Empty when G does not divide W (uneven last node) or W < 2G.
 */
export function hierarchicalPartitionSizes(worldSize: number, ranksPerNode: number): number[] {
  checkWorld(worldSize, ranksPerNode);
  if (worldSize % ranksPerNode !== 0) return [];
  return divisors(worldSize).filter((s) => s > ranksPerNode && s % ranksPerNode === 0);
}

function checkWorld(worldSize: unknown, ranksPerNode: unknown): asserts worldSize is number {
  if (!isPositiveInteger(worldSize)) {
    throw argumentError(`worldSize must be a positive integer, got ${describeValue(worldSize)}`);
  }
  if (worldSize > MAX_WORLD_SIZE) {
    throw argumentError(
      `worldSize ${worldSize} is larger than the largest job mics plans, MAX_WORLD_SIZE = ${MAX_WORLD_SIZE} ranks (2^20): ` +
        `use a positive integer up to ${MAX_WORLD_SIZE}`,
    );
  }
  if (!isPositiveInteger(ranksPerNode)) {
    throw argumentError(
      `ranksPerNode must be a positive integer (ranks on each node), got ${describeValue(ranksPerNode)}`,
    );
  }
  if (ranksPerNode > MAX_WORLD_SIZE) {
    throw argumentError(
      `ranksPerNode ${ranksPerNode} is larger than MAX_WORLD_SIZE = ${MAX_WORLD_SIZE} (2^20), the most ranks a job (or a node) may have: ` +
        `use a positive integer up to ${MAX_WORLD_SIZE}`,
    );
  }
}

function resolvePartitionSize(worldSize: number, ranksPerNode: number, requested: unknown): number {
  if (requested === 'auto') {
    // Largest divisor of W whose groups stay inside one node; 1 always qualifies.
    const sizes = singleNodePartitionSizes(worldSize, ranksPerNode);
    return sizes[sizes.length - 1];
  }
  const valid = divisors(worldSize);
  const validText = `valid partition sizes for worldSize ${worldSize} (divisors of ${worldSize}): ${listSizes(valid)}`;
  if (typeof requested !== 'number' || !Number.isSafeInteger(requested)) {
    throw argumentError(
      `partitionSize must be an integer or 'auto', got ${describeValue(requested)}; ${validText}`,
    );
  }
  if (requested < 1) {
    throw argumentError(`partitionSize must be at least 1, got ${requested}; ${validText}`);
  }
  if (requested > worldSize) {
    throw argumentError(
      `partitionSize ${requested} is larger than worldSize ${worldSize}; ${validText}`,
    );
  }
  if (worldSize % requested !== 0) {
    throw argumentError(
      `partitionSize ${requested} does not divide worldSize ${worldSize} ` +
        `(${worldSize} ranks cannot form whole replicas of ${requested}); ${validText}`,
    );
  }
  return requested;
}

interface Flatness {
  cause: FlatCause;
  reason: string;
}

/**
 * Decides whether the layout admits the two-stage all-gather; returns why not, or
 * undefined when it does. Order matters: the first cause that applies is the one a
 * user can act on (e.g. with an uneven last node no other S would help hierarchy).
 */
function layoutFlatness(w: number, g: number, s: number): Flatness | undefined {
  const inNode = singleNodePartitionSizes(w, g);
  if (!someGroupSpansNodes(w, g, s)) {
    return {
      cause: 'single-node',
      reason:
        `partitionSize ${s} keeps every partition group inside one node ` +
        `(ranksPerNode ${g}${w <= g ? `, worldSize ${w} fits in one node` : ''}), ` +
        `so a flat all-gather over the fast intra-node links is used; hierarchical partition sizes ` +
        `for worldSize ${w}, ranksPerNode ${g}: ${listSizes(hierarchicalPartitionSizes(w, g))}`,
    };
  }
  if (w % g !== 0) {
    const last = w - (Math.ceil(w / g) - 1) * g;
    return {
      cause: 'uneven-nodes',
      reason:
        `worldSize ${w} is not a multiple of ranksPerNode ${g} (the last node, node ${Math.ceil(w / g) - 1}, ` +
        `holds ${last} ranks), so no partition size gives every group whole nodes and ` +
        `partitionSize ${s} straddles nodes: flat all-gather; ` +
        `partition sizes that keep every group inside one node: ${listSizes(inNode)}`,
    };
  }
  if (s % g !== 0) {
    // Name one straddling group so the message is concrete.
    let example = '';
    for (let start = 0; start < w; start += s) {
      const first = Math.floor(start / g);
      const last = Math.floor((start + s - 1) / g);
      if (first !== last) {
        example = ` (e.g. ranks ${start}..${start + s - 1} cover nodes ${first}..${last} partly)`;
        break;
      }
    }
    return {
      cause: 'straddles-nodes',
      reason:
        `partitionSize ${s} is not a multiple of ranksPerNode ${g}, so partition groups straddle ` +
        `nodes unevenly${example}: flat all-gather; hierarchical partition sizes (multiples of ${g} ` +
        `dividing ${w}): ${listSizes(hierarchicalPartitionSizes(w, g))}; ` +
        `sizes inside one node: ${listSizes(inNode)}`,
    };
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// planGroups

/**
 * Plans every MiCS group of a job of `worldSize` ranks laid out node-major with
 * `ranksPerNode` ranks per node, for partition size `partitionSize`.
 *
 * - Partition groups: contiguous blocks of S ranks; replication groups: the columns
 *   {i, i+S, ...}; S == W is ZeRO-3 (one partition group, singleton replication groups).
 * - Hierarchical (S = N*G, N >= 2, G | W): intra-node groups are the G-rank chunks of
 *   each partition group, inter-node groups the ranks at the same offset of those chunks.
 * - Otherwise the plan is flat and `flatCause` / `flatReason` say why: S <= G with every
 *   group inside one node (`single-node`), uneven last node (`uneven-nodes`), S not a
 *   multiple of G (`straddles-nodes`), or `hierarchical: false` (`disabled`).
 *
 * @throws a MicsError (MICS_INVALID_ARGUMENT) (code `'MICS_INVALID_ARGUMENT'`) when `options` is not
 *   an object; when W or G is not a positive integer or is larger than {@link MAX_WORLD_SIZE};
 *   when S is not an integer, is < 1, > W, or does not divide W (the message lists the
 *   divisors of W, the first 28 and the last 4 when there are more than 32); when `hierarchical` is not a boolean or
 *   `'require'`; and when `'require'` is asked for on a layout that cannot be hierarchical.
 */
export function planGroups(options: PlanGroupsOptions): GroupPlan {
  if (typeof options !== 'object' || options === null) {
    throw argumentError(
      `planGroups: options ${describeValue(options)} is not valid: use an object {worldSize, ranksPerNode, partitionSize, hierarchical?}`,
    );
  }
  const { worldSize: w, ranksPerNode: g } = options;
  checkWorld(w, g);
  const s = resolvePartitionSize(w, g, options.partitionSize);
  const mode: unknown = options.hierarchical ?? true;
  if (mode !== true && mode !== false && mode !== 'require') {
    throw argumentError(`hierarchical must be true, false or 'require', got ${describeValue(mode)}`);
  }

  const r = w / s;
  const numNodes = Math.ceil(w / g);
  const partitionGroups = frozenGroups(range(0, r).map((p) => range(p * s, s)));
  const replicationGroups = frozenGroups(range(0, s).map((i) => range(0, r).map((p) => p * s + i)));

  let flat = layoutFlatness(w, g, s);
  if (flat !== undefined && mode === 'require') {
    throw argumentError(`hierarchical all-gather was required but is not possible: ${flat.reason}`);
  }
  if (flat === undefined && mode === false) {
    flat = {
      cause: 'disabled',
      reason:
        `hierarchical all-gather turned off (hierarchical: false); the layout would allow it ` +
        `(partitionSize ${s} = ${s / g} whole nodes of ${g} ranks)`,
    };
  }
  const hierarchical = flat === undefined;
  const n = hierarchical ? s / g : 0;

  const intra: number[][] = [];
  const inter: number[][] = [];
  if (hierarchical) {
    for (let p = 0; p < r; p++) {
      for (let j = 0; j < n; j++) intra.push(range(p * s + j * g, g));
      for (let l = 0; l < g; l++) inter.push(range(0, n).map((j) => p * s + j * g + l));
    }
  }
  const intraNodeGroups = frozenGroups(intra);
  const interNodeGroups = frozenGroups(inter);

  const forRank = (rank: number): RankGroups => {
    if (typeof rank !== 'number' || !Number.isSafeInteger(rank) || rank < 0 || rank >= w) {
      throw argumentError(`rank must be an integer in [0, ${w - 1}] for worldSize ${w}, got ${describeValue(rank)}`);
    }
    const partitionIndex = Math.floor(rank / s);
    const partitionRank = rank % s;
    const base: RankGroups = {
      rank,
      node: Math.floor(rank / g),
      localRank: rank % g,
      partition: partitionGroups[partitionIndex],
      partitionIndex,
      partitionRank,
      replication: replicationGroups[partitionRank],
      replicationRank: partitionIndex,
    };
    if (!hierarchical) return Object.freeze(base);
    // Partition groups start on node boundaries here, so the local index l inside
    // the group equals localRank and the chunk index j is the node within the group.
    const j = Math.floor(partitionRank / g);
    const l = partitionRank % g;
    return Object.freeze({
      ...base,
      intraNode: intraNodeGroups[partitionIndex * n + j],
      intraNodeRank: l,
      interNode: interNodeGroups[partitionIndex * g + l],
      interNodeRank: j,
    });
  };

  const plan: GroupPlan = {
    worldSize: w,
    ranksPerNode: g,
    partitionSize: s,
    replicationSize: r,
    numNodes,
    partitionGroups,
    replicationGroups,
    hierarchical,
    ...(hierarchical ? { nodesPerPartition: n } : { flatCause: flat?.cause, flatReason: flat?.reason }),
    intraNodeGroups,
    interNodeGroups,
    forRank,
  };
  return Object.freeze(plan);
}

// ---------------------------------------------------------------------------
// Hierarchical all-gather layout

/** One contiguous copy, in elements. */
export interface SlotCopy {
  /** Offset in the source (the stage-1 staging buffer). */
  readonly from: number;
  /** Offset in the output buffer B. */
  readonly to: number;
  readonly length: number;
}

/** One in-place all-gather of stage 2, in elements of B. */
export interface Stage2Gather {
  /** The node j (within the partition group) whose partitions this call assembles. */
  readonly node: number;
  /** This rank's input: B[inputOffset, inputOffset + shardLength) = partition j*G + l. */
  readonly inputOffset: number;
  /** The output: B[outputOffset, outputOffset + outputLength) = partitions j*G .. j*G+G-1. */
  readonly outputOffset: number;
  readonly outputLength: number;
}

/**
 * Where every element of a hierarchical all-gather goes, for one rank.
 * All offsets and lengths are in elements (not bytes).
 */
export interface HierarchicalSlots {
  /** N: nodes spanned by the partition group. */
  readonly nodes: number;
  /** G: ranks per node. */
  readonly ranksPerNode: number;
  /** l: this rank's index inside its node. */
  readonly localIndex: number;
  /** n: elements of one partition (one rank's shard). */
  readonly shardLength: number;
  /** S*n: elements of the gathered output B. */
  readonly outputLength: number;
  /**
   * Stage 1 (inter-node all-gather among the N ranks with local index l): the
   * partition index found at piece j of the staging buffer, j = 0..N-1: l, G+l, 2G+l, ...
   */
  readonly stage1Order: readonly number[];
  /** N*n: elements of the stage-1 staging buffer. */
  readonly stagingLength: number;
  /**
   * Where the staging buffer may live inside B to save an allocation: l*N*n. Pieces
   * taken from there may overlap their targets; see `rearrangeNeedsTemporary`.
   */
  readonly stagingOffsetInOutput: number;
  /**
   * The re-arrangement: piece j of staging (from j*n) goes to B at (j*G + l)*n.
   * Listed in j order.
   */
  readonly rearrange: readonly SlotCopy[];
  /**
   * True when, with staging placed at `stagingOffsetInOutput`, copying `rearrange`
   * forward in place would overwrite a piece before it is read: then copy the
   * staging through a temporary (or stage into a separate buffer). Copies whose
   * source and target coincide are no-ops and never count.
   */
  readonly rearrangeNeedsTemporary: boolean;
  /**
   * Stage 2 (intra-node, the G ranks of this node): N in-place all-gathers, best
   * issued as one grouped call. For each j the input is the slice at position l of
   * the output, which is what in-place all-gather (NCCL's convention) requires.
   */
  readonly stage2: readonly Stage2Gather[];
}

function checkNonNegativeInteger(name: string, x: unknown, min: number): void {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) {
    throw argumentError(`${name} must be an integer >= ${min}, got ${describeValue(x)}`);
  }
}

/**
 * The exact layout of the hierarchical all-gather of the MiCS paper (docs/groups.md) for the
 * rank with local index `l` in a partition group of S = N*G ranks (N nodes of G ranks),
 * each holding a shard of `n` elements; rank j*G + l of the group holds partition
 * j*G + l, and the output B holds partition r at offset r*n.
 *
 * @param N - nodes spanned by the partition group (>= 1; 1 degenerates to a plain intra-node all-gather)
 * @param G - ranks per node (>= 1)
 * @param l - local index of the rank, 0 <= l < G
 * @param n - elements per shard (>= 0)
 * @throws a MicsError (MICS_INVALID_ARGUMENT) on non-integer or out-of-range arguments, and when
 *   N x G is larger than {@link MAX_WORLD_SIZE}.
 */
export function hierarchicalSlots(N: number, G: number, l: number, n: number): HierarchicalSlots {
  checkNonNegativeInteger('N (nodes per partition group)', N, 1);
  checkNonNegativeInteger('G (ranks per node)', G, 1);
  checkNonNegativeInteger('n (elements per shard)', n, 0);
  if (N * G > MAX_WORLD_SIZE) {
    throw argumentError(
      `N x G (ranks in the partition group) must be at most MAX_WORLD_SIZE = ${MAX_WORLD_SIZE}, got ${N} x ${G} = ${N * G}`,
    );
  }
  if (typeof l !== 'number' || !Number.isSafeInteger(l) || l < 0 || l >= G) {
    throw argumentError(`l (local index) must be an integer in [0, ${G - 1}] for G = ${G}, got ${describeValue(l)}`);
  }
  const stagingOffset = l * N * n;
  const stage1Order = range(0, N).map((j) => j * G + l);
  const rearrange = range(0, N).map((j) => Object.freeze({ from: j * n, to: (j * G + l) * n, length: n }));

  // Forward in-place copy is safe iff no target written at step i overlaps a source
  // read at a later step k > i (sources of earlier steps are already consumed).
  // Targets and sources are pieces of n elements at multiples of n, so target i
  // overlaps exactly one source: piece k = (to_i - stagingOffset) / n = i*G + l - l*N.
  // One pass, not a pass per piece: N can be a large share of MAX_WORLD_SIZE.
  let needsTemp = false;
  if (n > 0) {
    for (let i = 0; i < N && !needsTemp; i++) {
      if (rearrange[i].to === stagingOffset + rearrange[i].from) continue; // identity copy writes nothing new
      const k = i * G + l - l * N;
      if (k > i && k < N) needsTemp = true;
    }
  }

  const stage2 = range(0, N).map((j) =>
    Object.freeze({ node: j, inputOffset: (j * G + l) * n, outputOffset: j * G * n, outputLength: G * n }),
  );
  return Object.freeze({
    nodes: N,
    ranksPerNode: G,
    localIndex: l,
    shardLength: n,
    outputLength: N * G * n,
    stage1Order: Object.freeze(stage1Order),
    stagingLength: N * n,
    stagingOffsetInOutput: stagingOffset,
    rearrange: Object.freeze(rearrange),
    rearrangeNeedsTemporary: needsTemp,
    stage2: Object.freeze(stage2),
  });
}
