/**
 * The hierarchical collectives of MiCS over a partition group that spans N nodes
 * of G ranks (S = N x G; exact layout in docs/groups.md).
 *
 * All-gather: stage 1 all-gathers across nodes among the ranks with the same local
 * index, the pieces are moved to their strided slots, stage 2 all-gathers inside
 * each node. Inter-node bytes drop from (S-1)/S to (S-G)/S of the output. Large
 * calls are pipelined: the shard is cut into chunks, and stage 2 of chunk k (G
 * broadcasts per node slot, in place) runs on the intra-node communicator while
 * stage 1 of chunk k+1 crosses the link on the inter-node one.
 *
 * Reduce-scatter: stage 1 reduce-scatters inside the node, one op per node j of
 * the group over its G consecutive blocks, so local rank l holds the node's
 * partial sum of blocks j x G + l for every j (N x n elements); stage 2
 * reduce-scatters those across nodes among the ranks with the same local index.
 * Only stage 2 crosses nodes, with 1/G of the bytes: (S-G)/S of the input per node
 * instead of (S-1)/S. Reducing inside the node first is the order that shrinks
 * the data before it meets the slow link; the other order would send G times more
 * across it. Large calls are pipelined like the all-gather: chunk k of every
 * block is packed into one contiguous piece (on the host in allocHost memory, so
 * the node's ranks read it in place instead of staging it), stage 1 reduces it
 * while stage 2 sends chunk k-1 across nodes.
 *
 * All-gathers on the same communicators run one at a time, in call order, and so
 * do reduce-scatters, on communicators of their own (see inCallOrder). Every
 * failure of either stage rejects the whole call, and only after every op
 * of the call has settled: no buffer is still in use when the caller hears of it.
 * A rank whose first stage fails will never join the second, where peers may
 * already wait for it: it aborts that communicator, so they fail now, naming it
 * and the cause, instead of at their timeout. (A failed second stage needs no
 * such message: every op of the first stage was issued before it.)
 */
import type { AccumulateOptions, Communicator } from './communicator';
import { ARRAY_TYPES, elementBytes, type DType } from '../core/dtypes';
import { invalidArgument, valueText } from '../core/errors';
import { ALL_GATHER_PIPELINE_CHUNKS, pipelineChunkElements, REDUCE_SCATTER_PIPELINE_CHUNKS } from '../core/pipeline';
import { DeviceTensor } from '../cuda/device-tensor';
import { hierarchicalSlots } from './groups';
import { allocHost } from './host-memory';
import { sameKind, spanOf, type Span, type Tensor } from './tensor';

/** The two communicators of the hierarchy for this rank. */
export interface HierarchyComms {
  /** The N ranks with this rank's local index, one per node of the partition group. */
  interNode: Communicator;
  /** This node's G ranks of the partition group. */
  intraNode: Communicator;
}

/** Options of the hierarchical all-gather. */
export interface HierarchicalAllGatherOptions {
  timeoutMs?: number;
  /**
   * Elements of the shard per pipeline chunk (default: a sixteenth of the shard, at
   * least 128 KiB of it; a shard smaller than 512 KiB is one chunk, not pipelined).
   */
  chunkElements?: number;
}

/** Elements per pipeline chunk (core/pipeline.ts), or the caller's `chunkElements`. */
function chunkLength(n: number, dtype: DType, requested: number | undefined, chunks: number): number {
  if (requested !== undefined) {
    if (!Number.isSafeInteger(requested) || requested < 1) {
      throw invalidArgument(`chunkElements ${valueText(requested)} is not valid: use a positive integer`);
    }
    return Math.min(requested, Math.max(n, 1));
  }
  return pipelineChunkElements(n, elementBytes(dtype), chunks);
}

/**
 * A new span of `length` elements of `like`'s dtype, in the same kind of memory;
 * `shared`: on the host from allocHost, so that same-node peers read it in place.
 */
function scratch(like: Span, length: number, shared = false): Span {
  if (like.tensor instanceof DeviceTensor) return spanOf(DeviceTensor.alloc(like.dtype, length, like.tensor.device), 'scratch');
  const data = shared ? allocHost(like.dtype, length) : new ARRAY_TYPES[like.dtype](length);
  return spanOf({ data, dtype: like.dtype } as Tensor, 'scratch');
}

/**
 * The two pack buffers of a pipelined reduce-scatter, kept per communicator and
 * reused by its next calls (they run one at a time, and a call settles only after
 * every peer finished reading them): no new allocHost region, descriptor and peer
 * mapping per call.
 */
const packCache = new WeakMap<Communicator, { dtype: DType; device: boolean; buffers: Span[] }>();

function packBuffers(comm: Communicator, like: Span, length: number): Span[] {
  const device = like.tensor instanceof DeviceTensor;
  const cached = packCache.get(comm);
  if (cached && cached.dtype === like.dtype && cached.device === device && cached.buffers[0].length >= length) {
    return cached.buffers.map((b) => b.sub(0, length));
  }
  const buffers = [scratch(like, length, true), scratch(like, length, true)];
  if (!device) packCache.set(comm, { dtype: like.dtype, device, buffers });
  return buffers;
}

/** Whether `span` is exactly `slot` of `whole` (overlaps it, and no other part of whole). */
function isSlot(span: Span, whole: Span, slotOffset: number, slotLength: number): boolean {
  if (span.length !== slotLength || !span.overlaps(whole.sub(slotOffset, slotLength))) return false;
  const before = slotOffset > 0 && span.overlaps(whole.sub(0, slotOffset));
  const end = slotOffset + slotLength;
  const after = end < whole.length && span.overlaps(whole.sub(end, whole.length - end));
  return !before && !after;
}

/**
 * Runs the ops of one call and settles them all before it settles: the first
 * failure (in the order this rank saw them) is the call's.
 */
class CallOps {
  private readonly ops: Promise<void>[] = [];
  private failure: unknown;
  private failed = false;

  /** Tracks `op`; `onFailure` runs once, at the call's first failure. */
  add(op: Promise<void>, onFailure: (err: unknown) => void): Promise<void> {
    const tracked = op.catch((err: unknown) => {
      if (!this.failed) {
        this.failed = true;
        this.failure = err;
        onFailure(err);
      }
      throw err;
    });
    tracked.catch(() => undefined); // awaited in settle(); no unhandled rejection meanwhile
    this.ops.push(tracked);
    return tracked;
  }

  get hasFailed(): boolean {
    return this.failed;
  }

  async settle(): Promise<void> {
    await Promise.allSettled(this.ops);
    if (this.failed) throw this.failure;
  }
}

/**
 * Hierarchical calls of one kind on the same communicators run one after the
 * other, in the order they were made. Each call issues its ops on the two
 * communicators as its stages progress; two calls running at once on the same
 * communicators (an all-gather and a reduce-scatter have opposite stage orders)
 * would interleave their ops on a communicator in an order that depends on timing,
 * and so differs between ranks: a mismatch. In call order every rank issues the
 * same ops in the same order.
 */
type CallQueue = WeakMap<Communicator, Promise<void>>;
const gatherCalls: CallQueue = new WeakMap();
const reduceCalls: CallQueue = new WeakMap();

function inCallOrder(queue: CallQueue, comms: HierarchyComms, run: () => Promise<void>): Promise<void> {
  const previous = Promise.all([queue.get(comms.intraNode), queue.get(comms.interNode)]);
  const call = previous.then(run);
  const settled = call.catch(() => undefined); // a failed call does not hold up the next one
  queue.set(comms.intraNode, settled);
  queue.set(comms.interNode, settled);
  return call;
}

/**
 * The reduce-scatter runs on communicators of its own, split once from the
 * hierarchy's (collective over each, at the first call): a reduce-scatter and a
 * prefetched all-gather then overlap, as the flat ones on the partition group did,
 * without ever sharing a communicator.
 */
const reduceHierarchies = new WeakMap<Communicator, Promise<HierarchyComms>>();

function reduceHierarchyOf(comms: HierarchyComms): Promise<HierarchyComms> {
  let hierarchy = reduceHierarchies.get(comms.intraNode);
  if (!hierarchy) {
    hierarchy = (async () => {
      // The same order on every rank: intra-node first (each split exchanges through the store).
      const intraNode = await comms.intraNode.split(0, comms.intraNode.rank, { name: `${comms.intraNode.name}/reduce` });
      const interNode = await comms.interNode.split(0, comms.interNode.rank, { name: `${comms.interNode.name}/reduce` });
      return { intraNode: intraNode!, interNode: interNode! };
    })();
    // A failed split stays failed: every later reduce-scatter rejects with its error at
    // once. Retrying would wait out another whole timeout per call (a step reduces every
    // unit), and could never line up with the peers' splits again anyway.
    hierarchy.catch(() => undefined);
    reduceHierarchies.set(comms.intraNode, hierarchy);
  }
  return hierarchy;
}

function abortOnFailure(comm: Communicator, what: string): (err: unknown) => void {
  return (err) => comm.abort(`${what} failed: ${(err as Error)?.message ?? String(err)}`);
}

/**
 * All-gathers `input` (n elements) of every rank of the partition group into
 * `output` (S x n, partition r at r x n), in two stages. Collective over the group.
 */
export function hierarchicalAllGather(
  comms: HierarchyComms,
  input: Tensor,
  output: Tensor,
  options: HierarchicalAllGatherOptions = {},
): Promise<void> {
  return inCallOrder(gatherCalls, comms, () => allGatherNow(comms, input, output, options));
}

async function allGatherNow(comms: HierarchyComms, input: Tensor, output: Tensor, options: HierarchicalAllGatherOptions): Promise<void> {
  const send = spanOf(input, 'allGather input');
  const out = spanOf(output, 'allGather output');
  sameKind(send, out, 'allGather');
  if (send.dtype !== out.dtype) {
    throw invalidArgument(`allGather: input is ${send.dtype} but output is ${out.dtype}: both must have the same dtype`);
  }
  const N = comms.interNode.size;
  const G = comms.intraNode.size;
  const l = comms.intraNode.rank;
  const j = comms.interNode.rank;
  const n = send.length;
  if (out.length !== N * G * n) {
    throw invalidArgument(`allGather: output must hold size x input = ${N * G} x ${n} elements, got ${out.length}`);
  }
  const chunk = chunkLength(n, send.dtype, options.chunkElements, ALL_GATHER_PIPELINE_CHUNKS);
  const opOptions = { timeoutMs: options.timeoutMs };
  if (chunk >= n) return unpipelinedAllGather(comms, send, out, opOptions);

  // In place (input = this rank's slot) the input is only read where nothing
  // writes; any other overlap with the output is copied out first.
  const source = send.overlaps(out) && !isSlot(send, out, (j * G + l) * n, n) ? send.clone() : send;
  const staging = scratch(send, N * n); // chunk [c0, c0 + len) of the N pieces at N x c0
  const ops = new CallOps();
  const stage1Failed = abortOnFailure(comms.intraNode, 'stage 1 (inter-node) of a hierarchical all-gather');
  const stage2Failed = (): void => undefined; // stage 1 of every chunk is queued already
  // Stage 1 of every chunk is queued at once: the inter-node communicator runs them
  // back to back, independent of stage 2.
  const stage1: Promise<void>[] = [];
  for (let c0 = 0; c0 < n; c0 += chunk) {
    const len = Math.min(chunk, n - c0);
    stage1.push(ops.add(comms.interNode.allGather(source.sub(c0, len).tensor, staging.sub(N * c0, N * len).tensor, opOptions), stage1Failed));
  }
  for (let c0 = 0, k = 0; c0 < n && !ops.hasFailed; c0 += chunk, k++) {
    const len = Math.min(chunk, n - c0);
    try {
      await stage1[k];
    } catch {
      break;
    }
    // Re-arrange: piece j' (partition j' x G + l) to its slot.
    for (let jj = 0; jj < N; jj++) {
      out.sub((jj * G + l) * n + c0, len).copyFrom(staging.sub(N * c0 + jj * len, len));
    }
    // Stage 2: local rank l' holds chunk k of partitions j' x G + l' for every j':
    // it broadcasts each, in place, to its node-mates.
    for (let jj = 0; jj < N; jj++) {
      for (let ll = 0; ll < G; ll++) {
        const slot = out.sub((jj * G + ll) * n + c0, len);
        ops.add(comms.intraNode.broadcast(slot.tensor, { root: ll, timeoutMs: options.timeoutMs }), stage2Failed);
      }
    }
  }
  await ops.settle();
}

/** The two stages one after the other (small shards, where pipelining only adds ops). */
async function unpipelinedAllGather(comms: HierarchyComms, send: Span, out: Span, opOptions: { timeoutMs?: number }): Promise<void> {
  const N = comms.interNode.size;
  const G = comms.intraNode.size;
  const l = comms.intraNode.rank;
  const n = send.length;
  const slots = hierarchicalSlots(N, G, l, n);

  // Stage 1 lands in B[l*N*n, (l+1)*N*n). An in-place input living there is
  // copied out first: it would be overwritten while the stage reads it.
  const staging = out.sub(slots.stagingOffsetInOutput, slots.stagingLength);
  const stage1Input = send.overlaps(staging) ? send.clone() : send;
  try {
    await comms.interNode.allGather(stage1Input.tensor, staging.tensor, opOptions);
  } catch (err) {
    // This rank will never join stage 2, where its node-mates may already wait
    // for it: abort the node's communicator so they fail now, naming this rank
    // and the cause, instead of at their timeout.
    comms.intraNode.abort(`stage 1 (inter-node) of a hierarchical all-gather failed: ${(err as Error).message}`);
    throw err;
  }

  // Re-arrange: staging piece j -> slot (j*G + l). Through a temporary when a
  // forward copy would overwrite a piece before reading it.
  const source = slots.rearrangeNeedsTemporary ? staging.clone() : staging;
  for (const copy of slots.rearrange) {
    out.sub(copy.to, copy.length).copyFrom(source.sub(copy.from, copy.length));
  }

  // Stage 2: N in-place all-gathers inside the node, as one grouped call.
  await comms.intraNode.allGatherGroup(
    slots.stage2.map((g) => [out.sub(g.inputOffset, n).tensor, out.sub(g.outputOffset, g.outputLength).tensor]),
    opOptions,
  );
}

/**
 * Reduce-scatters `input` (S x n elements, block r for partition rank r) over the
 * partition group into `output` (n elements: this rank's block), in two stages.
 * Collective over the group. Not for `avg` (the caller runs it flat: two stages
 * would divide, and round or truncate, twice).
 *
 * Order of the reduction (for floats, where it matters): each node's G blocks are
 * combined in local-rank order (as the shared-memory reduce-scatter does), then
 * the N node partials in the inter-node ring's order. Integers, max and min give
 * the flat result bit for bit. For f16 and bf16 the node partial is rounded to
 * the dtype before stage 2.
 */
export function hierarchicalReduceScatter(
  comms: HierarchyComms,
  input: Tensor,
  output: Tensor,
  options: AccumulateOptions & { chunkElements?: number } = {},
): Promise<void> {
  return inCallOrder(reduceCalls, comms, async () => reduceScatterNow(await reduceHierarchyOf(comms), input, output, options));
}

async function reduceScatterNow(
  comms: HierarchyComms,
  input: Tensor,
  output: Tensor,
  options: AccumulateOptions & { chunkElements?: number },
): Promise<void> {
  const send = spanOf(input, 'reduceScatter input');
  const out = spanOf(output, 'reduceScatter output');
  sameKind(send, out, 'reduceScatter');
  if (send.dtype !== out.dtype) {
    throw invalidArgument(`reduceScatter: input is ${send.dtype} but output is ${out.dtype}: both must have the same dtype`);
  }
  if (options.op === 'avg') {
    throw invalidArgument("reduceScatter: the hierarchical reduce-scatter does not average (use op 'sum' and scale, or hierarchical: false)");
  }
  const N = comms.interNode.size;
  const G = comms.intraNode.size;
  const l = comms.intraNode.rank;
  const j = comms.interNode.rank;
  const n = out.length;
  if (send.length !== N * G * n) {
    throw invalidArgument(`reduceScatter: input must hold size x output = ${N * G} x ${n} elements, got ${send.length}`);
  }
  if (out.overlaps(send) && !isSlot(out, send, (j * G + l) * n, n)) {
    throw invalidArgument(
      `reduceScatter: output overlaps input but is not this rank's slot (in place means output = input[rank*count .. (rank+1)*count))`,
    );
  }
  if (options.accumulate === true && out.overlaps(send)) {
    throw invalidArgument('reduceScatter: accumulate adds into the output, which must not overlap the input (no in place)');
  }
  const opOptions = { op: options.op, timeoutMs: options.timeoutMs };
  // Only the last stage writes the output: it adds there when accumulating.
  const lastOptions = { ...opOptions, accumulate: options.accumulate };
  // partials: block j' is the node partial of partition j' x G + l (chunk by chunk:
  // chunk [c0, c0 + len) of the N blocks at N x c0). In place, the output (our block
  // of the input) is written only by stage 2 of a chunk, after it was packed or read.
  const partials = scratch(send, N * n);
  const ops = new CallOps();
  const stage1Failed = abortOnFailure(comms.interNode, 'stage 1 (intra-node) of a hierarchical reduce-scatter');
  const chunk = chunkLength(n, send.dtype, options.chunkElements, REDUCE_SCATTER_PIPELINE_CHUNKS);
  if (chunk >= n) {
    for (let jj = 0; jj < N; jj++) {
      ops.add(comms.intraNode.reduceScatter(send.sub(jj * G * n, G * n).tensor, partials.sub(jj * n, n).tensor, opOptions), stage1Failed);
    }
    await ops.settle();
    await comms.interNode.reduceScatter(partials.tensor, out.tensor, lastOptions);
    return;
  }
  // Pipelined. Stage 1 of a chunk is issued only once the chunk is packed, so a rank
  // whose stage 2 fails may leave node-mates waiting for it there: abort that too.
  const stage2Failed = abortOnFailure(comms.intraNode, 'stage 2 (inter-node) of a hierarchical reduce-scatter');
  const S = N * G;
  const packed = packBuffers(comms.intraNode, send, S * chunk);
  const stage1: Promise<void>[] = [];
  const startStage1 = (k: number): void => {
    const c0 = k * chunk;
    const len = Math.min(chunk, n - c0);
    const buffer = packed[k % 2];
    // Chunk k of block r at r x len: node j's G blocks are contiguous again.
    for (let r = 0; r < S; r++) buffer.sub(r * len, len).copyFrom(send.sub(r * n + c0, len));
    const done: Promise<void>[] = [];
    for (let jj = 0; jj < N; jj++) {
      done.push(
        ops.add(comms.intraNode.reduceScatter(buffer.sub(jj * G * len, G * len).tensor, partials.sub(N * c0 + jj * len, len).tensor, opOptions), stage1Failed),
      );
    }
    stage1[k] = Promise.all(done).then(() => undefined);
    stage1[k].catch(() => undefined);
  };
  const chunks = Math.ceil(n / chunk);
  startStage1(0);
  for (let k = 0; k < chunks && !ops.hasFailed; k++) {
    const c0 = k * chunk;
    const len = Math.min(chunk, n - c0);
    try {
      await stage1[k];
    } catch {
      break;
    }
    // The link first: stage 2 of chunk k goes out before chunk k+1 is packed (into
    // the buffer of chunk k-1, whose stage 1 is done).
    ops.add(comms.interNode.reduceScatter(partials.sub(N * c0, N * len).tensor, out.sub(c0, len).tensor, lastOptions), stage2Failed);
    if (k + 1 < chunks) startStage1(k + 1);
  }
  await ops.settle();
}
