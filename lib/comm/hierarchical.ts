/**
 * The hierarchical all-gather of MiCS (exact layout in docs/groups.md):
 * stage 1 all-gathers across nodes among the ranks with the same local index,
 * the pieces are moved to their strided slots, stage 2 all-gathers inside each
 * node. Inter-node bytes drop from (S-1)/S to (S-G)/S of the output.
 *
 * Every failure of either stage rejects the whole call, and only after every op
 * of the call has settled (stage 2 is one grouped native op): no buffer is still
 * in use when the caller hears of it.
 */
import type { Communicator } from './communicator';
import { invalidArgument } from '../core/errors';
import { hierarchicalSlots } from './groups';
import { sameKind, spanOf, type Tensor } from './tensor';

/** The two communicators of the hierarchy for this rank. */
export interface HierarchyComms {
  /** The N ranks with this rank's local index, one per node of the partition group. */
  interNode: Communicator;
  /** This node's G ranks of the partition group. */
  intraNode: Communicator;
}

/**
 * All-gathers `input` (n elements) of every rank of the partition group into
 * `output` (S x n, partition r at r x n), in two stages. Collective over the group.
 */
export async function hierarchicalAllGather(
  comms: HierarchyComms,
  input: Tensor,
  output: Tensor,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const send = spanOf(input, 'allGather input');
  const out = spanOf(output, 'allGather output');
  sameKind(send, out, 'allGather');
  if (send.dtype !== out.dtype) {
    throw invalidArgument(`allGather: input is ${send.dtype} but output is ${out.dtype}: both must have the same dtype`);
  }
  const N = comms.interNode.size;
  const G = comms.intraNode.size;
  const l = comms.intraNode.rank;
  const n = send.length;
  if (out.length !== N * G * n) {
    throw invalidArgument(`allGather: output must hold size x input = ${N * G} x ${n} elements, got ${out.length}`);
  }
  const slots = hierarchicalSlots(N, G, l, n);
  const opOptions = { timeoutMs: options.timeoutMs };

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
