/**
 * The planner's input limits (PLAN_LIMITS, docs/scaling.md "Limits of the inputs"):
 * every value beyond a limit is a MicsError naming the value and the limit, before
 * any work; every value within them plans (no longer for minutes); and calls without the
 * arguments they need are MicsErrors saying what is expected, not TypeErrors.
 */
import { MAX_WORLD_SIZE } from '../../lib/comm/groups';
import { MicsError } from '../../lib/core/errors';
import {
  PLAN_LIMITS,
  choosePartitionSize,
  clusterPreset,
  customModel,
  modelFromParameterCount,
  modelPreset,
  parameterCount,
  planTraining,
  predictStep,
  simulateScaling,
  type ModelSpec,
} from '../../lib/plan';

/** The MicsError fn throws (MICS_INVALID_ARGUMENT), for its message. */
function invalid(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MicsError);
    expect((e as MicsError).code).toBe('MICS_INVALID_ARGUMENT');
    return (e as MicsError).message;
  }
  throw new Error('expected a MicsError, nothing was thrown');
}

/**
 * Runs fn. No timing is asserted (timings belong in benchmarks): the planner that
 * these inputs used to meet ran for minutes or ran out of memory, which jest's
 * timeout or the crash fails.
 */
function complete(fn: () => unknown): void {
  fn();
}

const p4d = clusterPreset('p4d');
const anything = (x: unknown): never => x as never;

describe('PLAN_LIMITS', () => {
  it('are far beyond any real model or cluster, and the GPU limit is planGroups\' MAX_WORLD_SIZE', () => {
    expect(PLAN_LIMITS).toEqual({
      parameters: 1e15,
      layers: 2000,
      hidden: 1_000_000,
      ffn: 10_000_000,
      vocab: 10_000_000,
      sequence: 10_000_000,
      microBatch: 1_000_000,
      gpus: 1_048_576,
      gpuCounts: 32,
    });
    expect(PLAN_LIMITS.gpus).toBe(MAX_WORLD_SIZE);
    expect(Object.isFrozen(PLAN_LIMITS)).toBe(true);
  });
});

describe('models beyond the limits are named errors', () => {
  it('a parameter count above 1e15 (1e30b used to plan 10^11 layers until the heap ran out)', () => {
    expect(invalid(() => modelPreset('1e30b'))).toBe(
      "model '1e30b' is 1e+39 parameters: a parameter count must be at least 1e6 and at most 1e15 (1000T), e.g. 13b or 1.3e9",
    );
    expect(invalid(() => modelPreset('1001t'))).toMatch(/^model '1001t' is 1001000000000000 parameters: a parameter count must be at least 1e6 and at most 1e15/);
    expect(invalid(() => modelFromParameterCount(1.01e15))).toBe(
      'a model needs at least 1e6 and at most 1e15 parameters to be planned, got 1010000000000000',
    );
    // The largest count is a shape within every limit, with at most 1e15 parameters.
    const largest = modelPreset('1000t');
    expect(parameterCount(largest)).toBeLessThanOrEqual(1e15);
    expect(parameterCount(largest)).toBeGreaterThan(0.99e15);
    expect(largest.layers).toBeLessThanOrEqual(PLAN_LIMITS.layers);
    expect(largest.hidden).toBeLessThanOrEqual(PLAN_LIMITS.hidden);
  });

  it('a shape beyond the layers, hidden, heads, vocabulary, sequence or MLP limit', () => {
    expect(invalid(() => customModel({ layers: 1e9, hidden: 1e9, heads: 1 }))).toBe('--layers 1000000000 is not valid: use a positive integer up to 2000');
    expect(invalid(() => customModel({ layers: 2001, hidden: 64, heads: 1 }))).toBe('--layers 2001 is not valid: use a positive integer up to 2000');
    expect(invalid(() => customModel({ layers: 2, hidden: 1e9, heads: 1 }))).toBe('--hidden 1000000000 is not valid: use a positive integer up to 1000000');
    expect(invalid(() => customModel({ layers: 2, hidden: 64, heads: 2e6 }))).toBe('--heads 2000000 is not valid: use a positive integer up to 1000000');
    expect(invalid(() => customModel({ layers: 2, hidden: 64, heads: 1, vocab: 1e8 }))).toBe('--vocab 100000000 is not valid: use a positive integer up to 10000000');
    expect(invalid(() => customModel({ layers: 2, hidden: 64, heads: 1, sequence: 1e8 }))).toBe('--seq 100000000 is not valid: use a positive integer up to 10000000');
    expect(invalid(() => customModel({ layers: 2, hidden: 64, heads: 1, ffn: 1e8 }))).toBe('--ffn 100000000 is not valid: use a positive integer up to 10000000');
    // Every size within its limit, but together more than 1e15 parameters.
    expect(invalid(() => customModel({ layers: 2000, hidden: 1e6, heads: 1 }))).toBe(
      'model custom gpt 2000x1000000 has 24000.08T parameters: the planner takes at most 1e15 (1000T)',
    );
    expect(customModel({ layers: 2000, hidden: 64, heads: 1 }).layers).toBe(2000);
  });

  it('a ModelSpec built by hand is checked by the planner itself (layers: 1e9 used to run out of heap)', () => {
    const deep: ModelSpec = { ...modelPreset('7b'), layers: 1e9 };
    expect(invalid(() => planTraining({ cluster: p4d, model: deep, nodes: 1 }))).toBe(
      'model.layers 1000000000 is not valid: use a positive integer up to 2000',
    );
    expect(invalid(() => simulateScaling({ cluster: p4d, model: deep, gpus: [8], strategies: ['mics'] }))).toBe(
      'model.layers 1000000000 is not valid: use a positive integer up to 2000',
    );
    expect(invalid(() => planTraining({ cluster: p4d, model: { ...modelPreset('7b'), hidden: 2.5 }, nodes: 1 }))).toBe(
      'model.hidden 2.5 is not valid: use a positive integer up to 1000000',
    );
    expect(invalid(() => planTraining({ cluster: p4d, model: anything({ ...modelPreset('7b'), family: 'rnn' }), nodes: 1 }))).toBe(
      'model.family "rnn" is not valid: use gpt, bert or llama',
    );
  });
});

describe('clusters and GPU counts beyond the limits are named errors', () => {
  it('--nodes whose GPUs exceed 2^20 (1e9 nodes used to take minutes)', () => {
    expect(invalid(() => planTraining({ cluster: p4d, model: modelPreset('100b'), nodes: 1e9 }))).toBe(
      '--nodes 1000000000 is too many: 1000000000 nodes of 8 GPUs are more than 1048576 GPUs ' +
        '(PLAN_LIMITS.gpus = MAX_WORLD_SIZE, 2^20, the largest job mics plans); use at most 131072 p4d nodes',
    );
    expect(invalid(() => planTraining({ cluster: p4d, model: modelPreset('100b'), nodes: 131073 }))).toMatch(/^--nodes 131073 is too many/);
  });

  it('GPU counts above 2^20, and more than 32 of them in one sweep', () => {
    expect(invalid(() => simulateScaling({ cluster: p4d, model: modelPreset('7b'), gpus: [8, 1e9], strategies: ['mics'] }))).toBe(
      'GPU count 1000000000 is too large: use at most 1048576 GPUs (PLAN_LIMITS.gpus = MAX_WORLD_SIZE, 2^20, the largest job mics plans)',
    );
    const many = Array.from({ length: 33 }, (_, i) => 8 * (i + 1));
    expect(invalid(() => simulateScaling({ cluster: p4d, model: modelPreset('7b'), gpus: many, strategies: ['mics'] }))).toBe(
      '--gpus lists 33 GPU counts: use at most 32 (PLAN_LIMITS.gpuCounts) in one sweep',
    );
  });

  it('choosePartitionSize: a world or a node above 2^20 ranks, a model above 1e15 parameters', () => {
    const input = { parameterCount: 1e9, worldSize: 16, ranksPerNode: 8, deviceMemoryBytes: 80e9 };
    expect(invalid(() => choosePartitionSize({ ...input, worldSize: 2 ** 31 }))).toBe(
      'worldSize 2147483648 is too large: use at most 1048576 (PLAN_LIMITS.gpus = MAX_WORLD_SIZE, 2^20, the largest job mics plans)',
    );
    expect(invalid(() => choosePartitionSize({ ...input, ranksPerNode: 2 ** 31 }))).toMatch(/^ranksPerNode 2147483648 is too large: use at most 1048576/);
    expect(invalid(() => choosePartitionSize({ ...input, parameterCount: 1e16 }))).toBe(
      'parameterCount 10000000000000000 is too large: use at most 1000000000000000 (PLAN_LIMITS.parameters, 1e15)',
    );
  });

  it('micro-batches above 1e6, accumulation and prefetch beyond safe integers', () => {
    const o = { cluster: p4d, model: modelPreset('7b'), nodes: 1 };
    expect(invalid(() => planTraining({ ...o, microBatch: 1e7 }))).toBe('micro-batch 10000000 is not valid: use a positive integer up to 1000000 or auto');
    expect(invalid(() => planTraining({ ...o, maxMicroBatch: 1e7 }))).toBe(
      'largest micro-batch (maxMicroBatch) 10000000 is not valid: use an integer in [1, 1000000]',
    );
    expect(invalid(() => planTraining({ ...o, accumulation: 1e300 }))).toBe('accumulation steps 1e+300 is not valid: use an integer in [1, 9007199254740991]');
    expect(invalid(() => planTraining({ ...o, prefetchDepth: -1 }))).toBe('prefetch depth -1 is not valid: use an integer in [0, 9007199254740991]');
    expect(invalid(() => planTraining({ ...o, sequence: 1e8 }))).toBe('sequence length 100000000 is not valid: use an integer in [1, 10000000]');
    expect(invalid(() => planTraining({ ...o, granularity: anything('unit') }))).toBe('granularity "unit" is not valid: use layer or module');
  });
});

describe('missing or wrong arguments are MicsErrors saying what is expected (they were TypeErrors)', () => {
  it('choosePartitionSize, planTraining and simulateScaling without options', () => {
    expect(invalid(() => choosePartitionSize(anything(undefined)))).toBe(
      'choosePartitionSize: input undefined is not valid: use an object {parameterCount, worldSize, ranksPerNode, deviceMemoryBytes, ...}',
    );
    expect(invalid(() => planTraining(anything(undefined)))).toBe(
      "planTraining: options undefined is not valid: use an object {cluster: clusterPreset('p4d'), model: modelPreset('100b'), ...}",
    );
    expect(invalid(() => simulateScaling(anything(null)))).toBe(
      "simulateScaling: options null is not valid: use an object {cluster: clusterPreset('p4d'), model: modelPreset('100b'), ...}",
    );
  });

  it('planTraining and simulateScaling without a cluster, a model, GPU counts or strategies', () => {
    expect(invalid(() => planTraining(anything({ model: modelPreset('7b'), nodes: 1 })))).toBe('cluster must be an object, got undefined');
    expect(invalid(() => planTraining(anything({ cluster: { ...p4d, device: 'fast' }, model: modelPreset('7b'), nodes: 1 })))).toBe(
      'cluster.device must be an object, got "fast"',
    );
    expect(invalid(() => planTraining(anything({ cluster: p4d, nodes: 1 })))).toBe(
      "model undefined is not valid: use a ModelSpec such as modelPreset('100b') or customModel({...})",
    );
    expect(invalid(() => planTraining(anything({ cluster: p4d, model: modelPreset('7b') })))).toBe('--nodes undefined is not valid: use a positive integer');
    expect(invalid(() => simulateScaling(anything({ cluster: p4d, model: modelPreset('7b'), strategies: ['mics'] })))).toBe(
      'gpus undefined is not valid: use an array of GPU counts, e.g. [16, 32, 64]',
    );
    expect(invalid(() => simulateScaling(anything({ cluster: p4d, model: modelPreset('7b'), gpus: [8] })))).toBe(
      'strategies undefined is not valid: use a non-empty array of mics, zero3, zero2, hsdp, ddp',
    );
  });

  it('modelPreset and clusterPreset without a name', () => {
    expect(invalid(() => modelPreset(anything(5)))).toBe(
      'modelPreset: name 5 is not valid: use a string, one of bert-10b, bert-15b, bert-20b, bert-50b, gpt2-30b, gpt-100b, gpt3-175b, llama-7b, llama-70b or a parameter count such as 13b',
    );
    expect(invalid(() => modelPreset(anything(undefined)))).toMatch(/^modelPreset: name undefined is not valid: use a string/);
    expect(invalid(() => clusterPreset(anything(5)))).toBe(
      'clusterPreset: name 5 is not valid: use a string, one of p3dn, p4d, p4de, p5, dgx-a100, dgx-h100, emulated',
    );
    expect(invalid(() => customModel(anything(undefined)))).toMatch(/^customModel: shape undefined is not valid: use an object \{layers, hidden, heads/);
  });
});

describe('the largest inputs within the limits plan (they used to run for minutes or exhaust the heap)', () => {
  // 2,000 layers of 7 units each (Llama, one unit per weight matrix), so small that every
  // partition size fits: every larger size is an alternative with its own predicted step.
  let deep: ModelSpec;
  beforeAll(() => {
    deep = customModel({ family: 'llama', layers: 2000, hidden: 64, heads: 1, vocab: 100, sequence: 16 });
  });

  it('planTraining: 2,000 layers on 887,040 GPUs (about 150 larger whole-node partition sizes, each with a predicted step)', () => {
    let alternatives = 0;
    complete(() => {
      alternatives = planTraining({ cluster: p4d, model: deep, nodes: 110880, granularity: 'module' }).alternatives.length;
    });
    expect(alternatives).toBeGreaterThan(100);
  });

  it('simulateScaling: 2,000 layers, 32 GPU counts up to 2^20, every strategy', () => {
    const gpus = Array.from({ length: 32 }, (_, i) => 2 ** 20 - 8 * 1155 * i);
    let rows = 0;
    complete(() => {
      rows = simulateScaling({ cluster: p4d, model: deep, gpus, strategies: ['mics', 'zero3', 'zero2', 'hsdp', 'ddp'], granularity: 'module' }).rows.length;
    });
    expect(rows).toBe(160);
  });

  it('the largest micro-batch a cluster with room for 10^6 sequences allows is found without trying each', () => {
    const roomy = { ...p4d, device: { ...p4d.device, memoryBytes: 1e20 } };
    let plan: ReturnType<typeof planTraining> | undefined;
    complete(() => {
      plan = planTraining({ cluster: roomy, model: deep, nodes: 1, maxMicroBatch: 1e6, granularity: 'module' });
    });
    expect(plan?.maxFittingMicroBatch).toBe(1e6);
  });

  it('accumulation steps cost nothing: m micro-steps take m times one (plus the boundary), even for m = 10^12', () => {
    const setup = { cluster: p4d, model: modelPreset('100b'), worldSize: 512, strategy: 'mics' as const, partitionSize: 64, microBatch: 1, sequence: 2048 };
    const one = predictStep({ ...setup, accumulation: 1 });
    let many = one;
    complete(() => {
      many = predictStep({ ...setup, accumulation: 1e12 });
    });
    const microStep = one.stepTime - one.boundaryTime;
    expect(many.boundaryTime).toBe(one.boundaryTime);
    expect(many.stepTime / (1e12 * microStep + one.boundaryTime)).toBeCloseTo(1, 12);
    expect(many.computeTime / one.computeTime).toBeCloseTo(1e12, 0);
  });

  it('a prefetch deeper than the model (every unit gathered ahead) plans too', () => {
    // Room for every unit at once, so each of the about 150 larger partition sizes gets a predicted step.
    const roomy = { ...p4d, device: { ...p4d.device, memoryBytes: 1e20 } };
    let plan: ReturnType<typeof planTraining> | undefined;
    complete(() => {
      plan = planTraining({ cluster: roomy, model: deep, nodes: 110880, granularity: 'module', prefetchDepth: 1e9 });
    });
    expect(plan?.alternatives.length).toBeGreaterThan(100);
    // Deeper than the model prefetches exactly what prefetching every unit does.
    const setup = { cluster: p4d, model: deep, worldSize: 64, strategy: 'mics' as const, partitionSize: 16, microBatch: 1, sequence: 16, accumulation: 1, granularity: 'module' as const };
    const deepest = predictStep({ ...setup, prefetchDepth: 1e9 });
    const every = predictStep({ ...setup, prefetchDepth: 7 * 2000 });
    expect(deepest.stepTime).toBe(every.stepTime);
    expect(deepest.exposedCommTime).toBe(every.exposedCommTime);
  });
});
