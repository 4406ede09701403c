/**
 * DistributedSampler: each rank its own slice of the data set, reshuffled every
 * epoch from a seed, the same number of examples (and batches) on every rank.
 */
import { DistributedSampler, MicsError } from '../../lib';
import { thrown } from '../helpers/errors';

function samplers(size: number, worldSize: number, options: { seed?: number; shuffle?: boolean; dropLast?: boolean } = {}): DistributedSampler[] {
  return Array.from({ length: worldSize }, (_, rank) => new DistributedSampler({ size, rank, worldSize, ...options }));
}

/** How often each example appears in one epoch over all ranks. */
function counts(all: DistributedSampler[], epoch: number): number[] {
  const seen = new Array<number>(all[0].size).fill(0);
  for (const s of all) for (const i of s.indices(epoch)) seen[i] += 1;
  return seen;
}

describe('one epoch over all ranks', () => {
  it('covers every example exactly once when the world size divides the data set (8000 over 4 ranks)', () => {
    const all = samplers(8000, 4, { seed: 3 });
    for (const epoch of [0, 1, 7]) expect(new Set(counts(all, epoch))).toEqual(new Set([1]));
    expect(all.map((s) => s.numSamples)).toEqual([2000, 2000, 2000, 2000]);
  });

  it('otherwise pads with examples from the start of the epoch order: every example at least once, W - size % W of them twice', () => {
    const all = samplers(10, 4, { seed: 1 });
    const seen = counts(all, 2);
    expect(seen.every((c) => c >= 1)).toBe(true);
    expect(seen.filter((c) => c === 2).length).toBe(2);
    expect(all.map((s) => s.indices(2).length)).toEqual([3, 3, 3, 3]);
    // padding repeats the order from its start, like torch's DistributedSampler
    const order = all[0].order(2);
    expect(all.map((s) => s.indices(2)[2])).toEqual([order[8], order[9], order[0], order[1]]);
  });

  it('or, with dropLast, leaves size % W examples out: every example at most once', () => {
    const all = samplers(10, 4, { seed: 1, dropLast: true });
    const seen = counts(all, 0);
    expect(seen.filter((c) => c === 1).length).toBe(8);
    expect(seen.filter((c) => c === 0).length).toBe(2);
    expect(all.map((s) => s.numSamples)).toEqual([2, 2, 2, 2]);
  });

  it('gives every rank the same number of batches, the last one shorter unless dropped', () => {
    const all = samplers(1001, 4);
    expect(all.map((s) => s.batches(0, 32).length)).toEqual([8, 8, 8, 8]);
    expect(all.map((s) => s.batches(0, 32).map((b) => b.length))).toEqual(Array(4).fill([32, 32, 32, 32, 32, 32, 32, 27]));
    expect(all.map((s) => s.numBatches(32, true))).toEqual([7, 7, 7, 7]);
    expect(all[1].batches(0, 32, true).flatMap((b) => Array.from(b))).toEqual(Array.from(all[1].indices(0).subarray(0, 224)));
  });
});

describe('shuffling', () => {
  it('reorders every epoch, the same way on every rank and for the same seed, differently for another seed', () => {
    const a = new DistributedSampler({ size: 500, rank: 1, worldSize: 2, seed: 5 });
    const again = new DistributedSampler({ size: 500, rank: 1, worldSize: 2, seed: 5 });
    const other = new DistributedSampler({ size: 500, rank: 1, worldSize: 2, seed: 6 });
    expect(Array.from(again.indices(4))).toEqual(Array.from(a.indices(4)));
    expect(Array.from(a.indices(0))).not.toEqual(Array.from(a.indices(1)));
    expect(Array.from(other.indices(4))).not.toEqual(Array.from(a.indices(4)));
    // the epoch's order is a permutation
    expect(Array.from(a.order(3)).sort((x, y) => x - y)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('keeps the data set order without shuffle: rank r gets r, r + W, r + 2W, ...', () => {
    const s = new DistributedSampler({ size: 10, rank: 1, worldSize: 3, shuffle: false });
    expect(Array.from(s.indices(0))).toEqual([1, 4, 7, 0]); // 10 is past the end: padding repeats the first example
    expect(Array.from(s.indices(5))).toEqual(Array.from(s.indices(0)));
  });
});

describe('bad options', () => {
  it('are rejected with MICS_INVALID_ARGUMENT naming the value and what is valid', () => {
    const cases: [unknown, RegExp][] = [
      [{ size: 0, rank: 0, worldSize: 1 }, /size 0 is not valid: use an integer in \[1, 2147483647\]/],
      [{ size: 10, rank: 4, worldSize: 4 }, /rank 4 is not valid: use an integer in \[0, 3\]/],
      [{ size: 10, rank: 0, worldSize: 1.5 }, /worldSize 1.5 is not valid/],
      [{ size: 10, rank: 0, worldSize: 2, seed: -1 }, /seed -1 is not valid/],
      [{ size: 3, rank: 0, worldSize: 4, dropLast: true }, /dropLast with size 3 < worldSize 4 leaves no example/],
      [undefined, /options \{size, rank, worldSize\} are required/],
      // Flags are booleans: 'false' would otherwise count as true.
      [{ size: 10, rank: 0, worldSize: 2, shuffle: 'false' }, /shuffle "false" is not valid: use true or false/],
      [{ size: 10, rank: 0, worldSize: 2, dropLast: 0 }, /dropLast 0 is not valid: use true or false/],
    ];
    for (const [options, message] of cases) {
      let error: unknown;
      try {
        new DistributedSampler(options as never);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(MicsError);
      expect([(error as MicsError).code, (error as MicsError).message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(message)]);
    }
    const s = new DistributedSampler({ size: 10, rank: 0, worldSize: 2 });
    expect(() => s.indices(-1)).toThrow(/epoch -1 is not valid/);
    expect(() => s.batches(0, 0)).toThrow(/batchSize 0 is not valid/);
    expect(() => s.batches(0, 2, 'yes' as never)).toThrow(/dropLast "yes" is not valid: use true or false/);
  });
});

describe('the largest data set', () => {
  it('has 2^31 - 1 examples: accepted, its counts computed without building an epoch', () => {
    const s = new DistributedSampler({ size: 2 ** 31 - 1, rank: 3, worldSize: 1024 });
    expect([s.numSamples, s.totalSize, s.numBatches(1000)]).toEqual([2097152, 2097152 * 1024, 2098]);
  });

  it('a larger one is refused when the sampler is made, not when an epoch would allocate it (indices are an Int32Array: past 2^31 - 1 they would wrap negative)', () => {
    for (const size of [2 ** 31, 2 ** 32, 2 ** 40]) {
      const err = thrown(() => new DistributedSampler({ size, rank: 0, worldSize: 8 }));
      expect([err.code, err.message]).toEqual([
        'MICS_INVALID_ARGUMENT',
        `DistributedSampler: size ${size} is not valid: use an integer in [1, 2147483647] (indices are an Int32Array)`,
      ]);
    }
  });
});
