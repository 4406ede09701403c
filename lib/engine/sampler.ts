/**
 * DistributedSampler: which examples of a data set each rank trains on, epoch by
 * epoch, like torch.utils.data.DistributedSampler.
 *
 * Every rank computes the same permutation of [0, size) from (seed, epoch) and keeps
 * the positions rank, rank + W, rank + 2W, ... of it, so the ranks' slices are
 * disjoint without any communication, and every rank gets the same number of
 * examples (hence the same number of batches: no rank waits at a collective for a
 * batch another rank does not have). When W does not divide the size, the
 * permutation is padded with its own first examples (a few examples are seen twice
 * in that epoch) or, with `dropLast`, cut (a few are not seen in that epoch).
 */
import { booleanOption, invalidArgument, valueText } from '../core/errors';

/** Options of {@link DistributedSampler}. */
export interface DistributedSamplerOptions {
  /**
   * Number of examples in the data set (indices 0 .. size-1): 1 to
   * {@link DistributedSampler.maxSize} (2^31 - 1, as indices are an Int32Array).
   */
  size: number;
  /** This rank (0 .. worldSize-1), e.g. `world.rank`. */
  rank: number;
  /** Number of ranks sharing the data set, e.g. `world.size`. */
  worldSize: number;
  /** Seed of the per-epoch shuffle; the same on every rank. Default 0. */
  seed?: number;
  /** Reshuffle every epoch (default true); false keeps the data set's order. */
  shuffle?: boolean;
  /**
   * When worldSize does not divide size: false (default) pads with examples from the
   * start of the epoch's order, true leaves the last size % worldSize examples out.
   */
  dropLast?: boolean;
}

/** The largest data set: indices are an Int32Array, and past 2^31 - 1 they would wrap negative. */
const MAX_SIZE = 2 ** 31 - 1;

function checkInteger(what: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER, why = ''): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw invalidArgument(`DistributedSampler: ${what} ${valueText(value)} is not valid: use ${range}${why}`);
  }
  return value;
}

/**
 * A small, fast generator (mulberry32) keyed by (seed, epoch): every rank draws the
 * same sequence for the same epoch, and a different one for every other epoch.
 */
function generator(seed: number, epoch: number): () => number {
  let state = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b) ^ Math.floor(seed / 2 ** 32)) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Splits a data set among the ranks, reshuffled every epoch; see the module notes. */
export class DistributedSampler {
  /** The most examples a data set may have: 2^31 - 1 (indices are an Int32Array). */
  static readonly maxSize = MAX_SIZE;

  readonly size: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  /** Examples per rank and epoch (the same on every rank). */
  readonly numSamples: number;
  /** Examples of all ranks together per epoch (numSamples x worldSize). */
  readonly totalSize: number;

  constructor(options: DistributedSamplerOptions) {
    if (!options || typeof options !== 'object') throw invalidArgument('DistributedSampler: options {size, rank, worldSize} are required');
    // Checked here, before an epoch allocates an Int32Array of this size.
    this.size = checkInteger('size', options.size, 1, MAX_SIZE, ' (indices are an Int32Array)');
    this.worldSize = checkInteger('worldSize', options.worldSize, 1);
    this.rank = checkInteger('rank', options.rank, 0, this.worldSize - 1);
    this.seed = options.seed === undefined ? 0 : checkInteger('seed', options.seed, 0);
    this.shuffle = booleanOption('DistributedSampler: shuffle', options.shuffle, true);
    this.dropLast = booleanOption('DistributedSampler: dropLast', options.dropLast, false);
    if (this.dropLast && this.size < this.worldSize) {
      throw invalidArgument(`DistributedSampler: dropLast with size ${this.size} < worldSize ${this.worldSize} leaves no example for any rank`);
    }
    this.numSamples = this.dropLast ? Math.floor(this.size / this.worldSize) : Math.ceil(this.size / this.worldSize);
    this.totalSize = this.numSamples * this.worldSize;
  }

  /** The epoch's order of the whole data set (the same on every rank), before padding. */
  order(epoch: number): Int32Array {
    checkInteger('epoch', epoch, 0);
    const order = new Int32Array(this.size);
    for (let i = 0; i < this.size; i++) order[i] = i;
    if (!this.shuffle) return order;
    const random = generator(this.seed, epoch);
    for (let i = this.size - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return order;
  }

  /** This rank's examples for `epoch` (0-based), numSamples of them. */
  indices(epoch: number): Int32Array {
    const order = this.order(epoch);
    const mine = new Int32Array(this.numSamples);
    for (let k = 0; k < this.numSamples; k++) {
      // position in the padded (or cut) order; padding repeats the order from its start
      mine[k] = order[(this.rank + k * this.worldSize) % this.size];
    }
    return mine;
  }

  /** Batches per rank and epoch for this batch size (the same on every rank). */
  numBatches(batchSize: number, dropLast = false): number {
    checkInteger('batchSize', batchSize, 1);
    booleanOption('DistributedSampler: dropLast', dropLast, false);
    return dropLast ? Math.floor(this.numSamples / batchSize) : Math.ceil(this.numSamples / batchSize);
  }

  /**
   * This rank's examples for `epoch` in batches of `batchSize` (views of one array);
   * the last one is shorter unless `dropLast`, the same on every rank.
   */
  batches(epoch: number, batchSize: number, dropLast = false): Int32Array[] {
    const count = this.numBatches(batchSize, dropLast);
    const mine = this.indices(epoch);
    return Array.from({ length: count }, (_, b) => mine.subarray(b * batchSize, Math.min((b + 1) * batchSize, mine.length)));
  }
}
