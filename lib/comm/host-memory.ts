/**
 * Host memory that the other ranks of a node read in place (like MPI_Alloc_mem or
 * NCCL's registered buffers). An allGather, reduceScatter or allReduce over
 * shared memory whose input comes from {@link allocHost} on every rank skips the
 * staging copies: each rank reads its peers' inputs directly
 * (`Communicator.directOps` counts those ops). Outputs may be any host buffer.
 * Ordinary TypedArrays keep working everywhere; when some rank's input is not
 * from allocHost, that op stages through shared memory as usual.
 */
import { loadAddon } from '../core/native';
import { ARRAY_TYPES, DTYPES, elementBytes, type DType, type HostArrayOf } from '../core/dtypes';
import { invalidArgument } from '../core/errors';

export type { HostArrayOf } from '../core/dtypes';

/** The largest allocation accepted, in bytes (2^46). */
export const MAX_HOST_BYTES = 2 ** 46;

/**
 * Allocates `count` zero-filled elements of `dtype` in shareable host memory.
 *
 * The memory belongs to this process and is freed when the returned array (and
 * every view of its buffer) is garbage collected; peers that mapped it unmap it
 * at this rank's next direct op, or when their communicator is destroyed. Each
 * allocation holds a file descriptor until then: allocate a few large,
 * long-lived buffers (flat parameters, gradients), not one per op.
 * Views (`subarray`, `{data, offset, length}`) of it are registered too.
 *
 * @throws MicsError `MICS_INVALID_ARGUMENT` for an unknown dtype or a count that
 *   is not a whole number in [0, 2^46 / elementBytes(dtype)].
 */
export function allocHost<D extends DType>(dtype: D, count: number): HostArrayOf<D> {
  if (!DTYPES.includes(dtype)) {
    throw invalidArgument(`allocHost: dtype '${String(dtype)}' is not valid: use one of ${DTYPES.join(', ')}`);
  }
  const bytes = count * elementBytes(dtype);
  if (!Number.isInteger(count) || count < 0 || bytes > MAX_HOST_BYTES) {
    throw invalidArgument(
      `allocHost: count ${String(count)} is not valid for ${dtype}: use a whole number in [0, ${MAX_HOST_BYTES / elementBytes(dtype)}]`,
    );
  }
  const buffer = loadAddon().addon.allocHost(bytes);
  return new ARRAY_TYPES[dtype](buffer) as HostArrayOf<D>;
}
