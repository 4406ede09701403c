/**
 * The hierarchical all-gather of MiCS (shared/reference/mics.md, exact layout):
 * stage 1 all-gathers across nodes among the ranks with the same local index,
 * the pieces are moved to their strided slots, stage 2 all-gathers inside each
 * node. Inter-node bytes drop from (S-1)/S to (S-G)/S of the output.
 *
 * Every failure of either stage rejects the whole call, and only after every op
 * of the call has settled (stage 2 is one grouped native op): no buffer is still
 * in use when the caller hears of it.
 */
import type { Communicator } from './communicator';
import { bytesOf, resolveTensor, invalidArgument, type HostArray, type HostTensor, type DType } from './dtypes';
import { hierarchicalSlots } from './groups';

/** The two communicators of the hierarchy for this rank. */
export interface HierarchyComms {
  /** The N ranks with this rank's local index, one per node of the partition group. */
  interNode: Communicator;
  /** This node's G ranks of the partition group. */
  intraNode: Communicator;
}

function view(dtype: DType, array: HostArray): HostTensor {
  return { data: array, dtype };
}

/**
 * All-gathers `input` (n elements) of every rank of the partition group into
 * `output` (S x n, partition r at r x n), in two stages. Collective over the group.
 */
export async function hierarchicalAllGather(
  comms: HierarchyComms,
  input: HostTensor,
  output: HostTensor,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const send = resolveTensor(input, 'allGather input');
  const recv = resolveTensor(output, 'allGather output');
  if (send.dtype !== recv.dtype) {
    throw invalidArgument(`allGather: input is ${send.dtype} but output is ${recv.dtype}: both must have the same dtype`);
  }
  const N = comms.interNode.size;
  const G = comms.intraNode.size;
  const l = comms.intraNode.rank;
  const n = send.array.length;
  if (recv.array.length !== N * G * n) {
    throw invalidArgument(
      `allGather: output must hold size x input = ${N * G} x ${n} elements, got ${recv.array.length}`,
    );
  }
  const slots = hierarchicalSlots(N, G, l, n);
  const out = recv.array;
  const sub = (begin: number, length: number): HostArray => out.subarray(begin, begin + length) as HostArray;
  const dtype = send.dtype;
  const opOptions = { timeoutMs: options.timeoutMs };

  // Stage 1 lands in B[l*N*n, (l+1)*N*n). An in-place input living there is
  // copied out first: it would be overwritten while the stage reads it.
  const staging = sub(slots.stagingOffsetInOutput, slots.stagingLength);
  let stage1Input = send.array;
  if (send.array.buffer === out.buffer && overlaps(send.array, staging)) {
    stage1Input = send.array.slice() as HostArray;
  }
  await comms.interNode.allGather(view(dtype, stage1Input), view(dtype, staging), opOptions);

  // Re-arrange: staging piece j -> slot (j*G + l). Through a temporary when a
  // forward copy would overwrite a piece before reading it.
  const source = slots.rearrangeNeedsTemporary ? (staging.slice() as HostArray) : staging;
  for (const copy of slots.rearrange) {
    const target = sub(copy.to, copy.length);
    const piece = source.subarray(copy.from, copy.from + copy.length);
    if (target.byteOffset !== piece.byteOffset || target.buffer !== piece.buffer) bytesOf(target).set(bytesOf(piece));
  }

  // Stage 2: N in-place all-gathers inside the node, as one grouped call.
  await comms.intraNode.allGatherGroup(
    slots.stage2.map((g) => [view(dtype, sub(g.inputOffset, n)), view(dtype, sub(g.outputOffset, g.outputLength))]),
    opOptions,
  );
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}
