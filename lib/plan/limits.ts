/**
 * The largest inputs the planner takes. Each is far beyond any real model or
 * cluster, and small enough that the largest allowed plan or sweep finishes in
 * well under a few seconds: the planner's work grows with the layers (units of the
 * step schedule), the divisors of the GPU count (partition sizes looked at) and the
 * GPU counts of a sweep. A value above a limit is a MicsError (MICS_INVALID_ARGUMENT)
 * naming the limit, not a plan that runs for minutes or out of memory.
 * docs/scaling.md, "Limits of the inputs", lists them.
 *
 * @packageDocumentation
 */
import { MAX_WORLD_SIZE } from '../comm/groups';

/** Upper bounds of the planner's inputs (all inclusive). */
export const PLAN_LIMITS = Object.freeze({
  /** Model parameters: 10^15, 1,000T (the largest trained models have about 2 x 10^12). */
  parameters: 1e15,
  /**
   * Transformer layers: twice the deepest transformer trained (DeepNet, 1,000 layers;
   * large language models have at most about 130). Every predicted step simulates
   * each unit (up to 7 per layer with `granularity: 'module'`), and a plan predicts a
   * step for each larger partition size (up to about 150 on 2^20 GPUs), a sweep one
   * per GPU count and strategy: at 2,000 layers either takes about a second.
   */
  layers: 2_000,
  /** Hidden size, MLP inner size and attention heads (the widest models are about 2 x 10^4 wide). */
  hidden: 1_000_000,
  ffn: 10_000_000,
  /** Vocabulary entries (the largest vocabularies have about 2.6 x 10^5). */
  vocab: 10_000_000,
  /** Tokens per sequence (10M). */
  sequence: 10_000_000,
  /** Sequences per GPU per micro-step, and the largest micro-batch 'auto' tries. */
  microBatch: 1_000_000,
  /** GPUs in one job: the same bound as planGroups' (MAX_WORLD_SIZE, 2^20 = 1,048,576 ranks). */
  gpus: MAX_WORLD_SIZE,
  /** GPU counts in one `simulate` sweep (1,2,...,2^20 is 21). */
  gpuCounts: 32,
});

