/**
 * Host memory that the other ranks of a node read in place (like MPI_Alloc_mem or
 * NCCL's registered buffers). An allGather, reduceScatter or allReduce over
 * shared memory whose input comes from {@link allocHost} on every rank skips the
 * staging copies: each rank reads its peers' inputs directly
 * (`Communicator.directOps` counts those ops). Outputs may be any host buffer.
 * Ordinary TypedArrays keep working everywhere; when some rank's input is not
 * from allocHost, that op stages through shared memory as usual.
 */
import { constants as bufferConstants } from 'node:buffer';
import { loadAddon } from '../core/native';
import { ARRAY_TYPES, DTYPES, elementBytes, type DType, type HostArrayOf } from '../core/dtypes';
import { describeValue, invalidArgument, valueText } from '../core/errors';

export type { HostArrayOf } from '../core/dtypes';

/** The addon's own cap on one allocation: 2^46 bytes (64 TiB). */
const MAX_BYTES = 2 ** 46;

/**
 * The largest `count` {@link allocHost} accepts for `dtype`: the fewer of what one
 * TypedArray of this Node can hold (`buffer.constants.MAX_LENGTH` elements: 2^32
 * on Node 20 and 21, 2^53 - 1 since Node 22) and 2^46 bytes.
 *
 * On Node 20 that is 2^32 elements for every dtype: 16 GiB of f32, 32 GiB of f64,
 * 4 GiB of u8. A larger flat buffer must be split into several allocations.
 */
export function maxHostElements(dtype: DType): number {
  if (!DTYPES.includes(dtype)) {
    throw invalidArgument(`maxHostElements: dtype '${valueText(dtype)}' is not valid: use one of ${DTYPES.join(', ')}`);
  }
  return Math.min(bufferConstants.MAX_LENGTH, Math.floor(MAX_BYTES / elementBytes(dtype)));
}

/**
 * Allocates `count` zero-filled elements of `dtype` in shareable host memory.
 *
 * The memory belongs to this process and is freed when the returned array (and
 * every view of its buffer) is garbage collected; peers that mapped it unmap it
 * at this rank's next direct op, or when their communicator is destroyed. Each
 * allocation holds a file descriptor until then: allocate a few large,
 * long-lived buffers (flat parameters, gradients), not one per op.
 * Views (`subarray`, `{data, offset, length}`) of it are registered too.
 * Pages are allocated when first touched, so a large array costs only what is used.
 *
 * @throws MicsError `MICS_INVALID_ARGUMENT` for an unknown dtype or a count that
 *   is not a whole number in [0, {@link maxHostElements}(dtype)];
 *   `MICS_SYSTEM` when the operating system refuses the memory.
 */
export function allocHost<D extends DType>(dtype: D, count: number): HostArrayOf<D> {
  if (!DTYPES.includes(dtype)) {
    throw invalidArgument(`allocHost: dtype '${valueText(dtype)}' is not valid: use one of ${DTYPES.join(', ')}`);
  }
  const max = maxHostElements(dtype);
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0 || count > max) {
    throw invalidArgument(
      `allocHost: count ${describeValue(count)} is not valid for ${dtype}: use a whole number in [0, ${max}]` +
        (typeof count === 'number' && count > max && Number.isInteger(count) ? ` (one ${ARRAY_TYPES[dtype].name} holds at most ${max} elements here)` : ''),
    );
  }
  const buffer = loadAddon().addon.allocHost(count * elementBytes(dtype));
  return new ARRAY_TYPES[dtype](buffer) as HostArrayOf<D>;
}
