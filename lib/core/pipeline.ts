/**
 * How the hierarchical collectives cut a shard into pipeline chunks (stage 2 of
 * chunk k runs while stage 1 moves chunk k+1). The collectives (comm/hierarchical.ts)
 * and the cost model (plan/collectives.ts) both follow this rule.
 *
 * Measured on 2 emulated nodes x 4 ranks, 64 MiB, 1 Gbit/s: the all-gather is best
 * at 16 to 32 chunks (8 leave 20-70 ms more of stage 1 exposed, 64 cost 20 ms more);
 * the reduce-scatter, whose stage 1 (packing and reducing on the CPU) is much heavier,
 * at 64 (1.63x flat against 1.44x at 16 and 1.56x at 32; 128 chunks of 64 KiB: 1.45x).
 */

/** Shards from this size on are pipelined. */
export const PIPELINE_BYTES = 512 * 1024;
/** No chunk is smaller than this. */
export const MIN_CHUNK_BYTES = 128 * 1024;
/** Chunks of the hierarchical all-gather's shard. */
export const ALL_GATHER_PIPELINE_CHUNKS = 16;
/** Chunks of the hierarchical reduce-scatter's shard. */
export const REDUCE_SCATTER_PIPELINE_CHUNKS = 64;

/**
 * Elements per chunk of a shard of `n` elements of `elementBytes` bytes each: `n`
 * (one chunk, not pipelined) below PIPELINE_BYTES, else a `chunks`-th of the shard
 * but at least MIN_CHUNK_BYTES.
 */
export function pipelineChunkElements(n: number, elementBytes: number, chunks: number): number {
  if (n * elementBytes < PIPELINE_BYTES) return Math.max(n, 1);
  return Math.max(Math.ceil(MIN_CHUNK_BYTES / elementBytes), Math.ceil(n / chunks));
}
