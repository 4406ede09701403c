/** Scale-aware partitioning: the smallest S that fits, whole nodes preferred, named errors. */
import {
  choosePartitionSize,
  clusterPreset,
  customModel,
  fastestPartition,
  largestMicroBatch,
  memoryPerGpu,
  modelPreset,
  paddedElements,
  planTraining,
  precisionOf,
  predictStep,
  simulateScaling,
} from '../../lib/plan';

const GiB = 1024 ** 3;

describe('memory model', () => {
  it('pads every unit to a multiple of S x 16 elements', () => {
    expect(paddedElements(100, 4)).toBe(128);
    expect(paddedElements(128, 4)).toBe(128);
    expect(paddedElements(1, 1)).toBe(16);
  });

  it('counts 18 B per parameter for this engine, 16 B for the paper, and bf16 reduction halves the gradient bytes', () => {
    expect(precisionOf('engine').stateBytesPerParameter).toBe(18);
    expect(precisionOf('paper').stateBytesPerParameter).toBe(16);
    expect(precisionOf('engine').reduceBytes).toBe(4);
    expect(precisionOf('engine', 'bf16').reduceBytes).toBe(2);
  });

  it('adds states / S, (prefetch + 1) gathered units, one gradient buffer, activations and the runtime', () => {
    const model = customModel({ layers: 2, hidden: 64, heads: 2, vocab: 100, sequence: 16 });
    const mem = memoryPerGpu({
      model, paddedParameters: 8e9, largestUnit: 1e9, shardSize: 8, gathersParameters: true, precision: precisionOf('engine'),
      prefetchDepth: 1, microBatch: 1, sequence: 16, recompute: true, deviceMemoryBytes: 100e9, runtimeReserveBytes: 1e9, fragmentation: 0.1,
    });
    expect(mem.modelStates).toBe((8e9 * 18) / 8);
    expect(mem.gatheredUnits).toBe(2 * 1e9 * 2);
    expect(mem.gradientBuffer).toBe(1e9 * 4);
    expect(mem.usable).toBe(90e9);
    expect(mem.total).toBe(mem.modelStates + mem.gatheredUnits + mem.gradientBuffer + mem.activations + 1e9);
    expect(mem.fits).toBe(true);
  });
});

describe('choosePartitionSize (what the engine calls for partitionSize: auto)', () => {
  // 1e9 parameters x 18 B = 18 GB of model states; 3 GB usable per rank.
  const input = { parameterCount: 1e9, worldSize: 16, ranksPerNode: 8, deviceMemoryBytes: 3e9 / 0.9 };

  it('takes S = 8 when the states just fit at 8 and not at 4, and says why 4 does not', () => {
    const c = choosePartitionSize(input);
    expect(c.partitionSize).toBe(8);
    expect(c.replicationSize).toBe(2);
    expect(c.hierarchical).toBe(false);
    expect(c.requiredBytes).toBe(18e9 / 8);
    const four = c.candidates.find((x) => x.partitionSize === 4)!;
    expect(four.fits).toBe(false);
    expect(four.requiredBytes).toBe(18e9 / 4);
    expect(c.reason).toMatch(/^S = 8: the smallest partition size whose model states fit .*; S = 4 needs 4\.2 GiB > 2\.8 GiB usable/);
  });

  it('moves to the next size when the gathered units no longer fit beside the states', () => {
    // At S = 8: 2.25 GB of states + 2 x 0.09e9 x 2 B gathered + 0.09e9 x 4 B gradient = 2.97 GB <= 3 GB usable;
    // with 0.2e9-element units 3.85 GB does not fit, and S = 16 (1.125 + 0.8 + 0.8 = 2.725 GB) does.
    expect(choosePartitionSize({ ...input, largestUnitElements: 0.09e9 }).partitionSize).toBe(8);
    expect(choosePartitionSize({ ...input, largestUnitElements: 0.2e9 }).partitionSize).toBe(16);
    expect(choosePartitionSize({ ...input, largestUnitElements: 0.2e9 }).hierarchical).toBe(true);
  });

  it('counts gathered units at their dtype: fp32 units (4 B) move 0.09e9-element units from S = 8 to 16', () => {
    // At S = 8: 2.25 GB + 2 x 0.09e9 x 4 B + 0.09e9 x 4 B = 3.33 GB > 3 GB usable; at S = 16, 2.205 GB.
    const c = choosePartitionSize({ ...input, largestUnitElements: 0.09e9, gatheredBytesPerElement: 4 });
    expect(c.partitionSize).toBe(16);
    expect(c.requiredBytes).toBeCloseTo(1.125e9 + 0.72e9 + 0.36e9, -3);
    expect(() => choosePartitionSize({ ...input, gatheredBytesPerElement: 1.5 })).toThrow(/gatheredBytesPerElement must be a positive integer, got 1.5/);
  });

  it('prefers whole nodes: skips S = 12 on nodes of 8 and says so', () => {
    const c = choosePartitionSize({ parameterCount: 1e9, worldSize: 24, ranksPerNode: 8, deviceMemoryBytes: 1.6e9 / 0.9 });
    expect(c.partitionSize).toBe(24);
    expect(c.hierarchical).toBe(true);
    expect(c.candidates.find((x) => x.partitionSize === 12)?.reason).toMatch(/skipped: groups of 12 straddle nodes of 8/);
  });

  it('names the model, the world and what S = W would need when it fits nowhere', () => {
    expect(() => choosePartitionSize({ ...input, deviceMemoryBytes: 1e9 })).toThrow(
      /the model \(1B parameters, 18 B each\) fits at no partition size on 16 ranks: even S = 16 needs 1\.0 GiB per rank and 858\.3 MiB is usable/,
    );
  });

  it('rejects bad input by name', () => {
    expect(() => choosePartitionSize({ ...input, worldSize: 0 })).toThrow(/worldSize must be a positive integer, got 0/);
    expect(() => choosePartitionSize({ ...input, parameterCount: -1 })).toThrow(/parameterCount must be a positive number/);
    expect(() => choosePartitionSize({ ...input, fragmentation: 1 })).toThrow(/fragmentation must be a fraction in \[0, 1\), got 1/);
  });
});

describe('planTraining', () => {
  it('plans the 100B model on 64 p4d: the smallest S whose memory fits, hierarchical across nodes', () => {
    const plan = planTraining({ cluster: clusterPreset('p4d'), model: modelPreset('100b'), nodes: 64 });
    expect(plan.worldSize).toBe(512);
    expect(plan.hierarchical).toBe(true);
    const smaller = plan.candidates.filter((c) => c.partitionSize < plan.partitionSize);
    expect(smaller.every((c) => !c.memory.fits)).toBe(true);
    expect(plan.prediction.memory.fits).toBe(true);
    expect(plan.prediction.memory.total).toBeLessThanOrEqual(40 * GiB * 0.9);
    expect(plan.microBatch).toBe(plan.maxFittingMicroBatch);
    expect(plan.prediction.stepTime).toBeGreaterThan(plan.prediction.computeTime);
  });

  it('a model that fits nowhere, an unknown preset and a bad node count are named errors', () => {
    expect(() => planTraining({ cluster: clusterPreset('p3dn'), model: modelPreset('175b'), nodes: 2 })).toThrow(
      /gpt3-175b \(174\.6B parameters\) fits at no partition size on 16 V100-SXM2-32GB GPUs/,
    );
    expect(() => clusterPreset('p9')).toThrow(/unknown cluster 'p9': use one of p3dn, p4d, p4de, p5, dgx-a100, dgx-h100, emulated/);
    expect(() => planTraining({ cluster: clusterPreset('p4d'), model: modelPreset('7b'), nodes: 0 })).toThrow(/--nodes 0 is not valid/);
  });
});

describe('simulateScaling', () => {
  it('keeps MiCS\' per-GPU throughput nearly flat while ZeRO-3\'s falls (weak scaling)', () => {
    const r = simulateScaling({
      cluster: clusterPreset('p4d'), model: modelPreset('100b'), gpus: [128, 512], strategies: ['mics', 'zero3'], microBatch: 1,
      accounting: 'paper', granularity: 'module',
    });
    const eff = (s: string): number => r.rows.find((x) => x.strategy === s && x.gpus === 512)!.weakScalingEfficiency;
    expect(eff('mics')).toBeGreaterThan(eff('zero3'));
    expect(r.rows.filter((x) => x.gpus === 128).every((x) => x.weakScalingEfficiency === 1)).toBe(true);
  });

  it('rejects GPU counts that are not whole nodes', () => {
    expect(() => simulateScaling({ cluster: clusterPreset('p4d'), model: modelPreset('7b'), gpus: [12], strategies: ['mics'] })).toThrow(
      /GPU count 12 is not a whole number of p4d nodes: use a multiple of 8/,
    );
  });
});

describe('attention kernel', () => {
  const base = { cluster: clusterPreset('p4de'), model: modelPreset('llama-70b'), sequence: 4096, nodes: 16, microBatch: 'auto' as const };

  it('a fused kernel leaves room for more sequences at the same partition size', () => {
    const unfused = planTraining(base), flash = planTraining({ ...base, attention: 'flash' });
    expect(flash.partitionSize).toBe(unfused.partitionSize);
    expect(flash.microBatch).toBeGreaterThan(unfused.microBatch);
    expect(flash.prediction.memory.fits).toBe(true);
    // The same micro-batch needs less memory: only the s x s term differs.
    const at = (attention: 'unfused' | 'flash') => planTraining({ ...base, microBatch: 2, attention }).prediction.memory;
    expect(at('unfused').activations - at('flash').activations).toBeGreaterThan(0);
    expect(at('unfused').modelStates).toBe(at('flash').modelStates);
  });

  it('rejects an unknown kernel by name', () => {
    expect(() => planTraining({ ...base, attention: 'fused' as 'flash' })).toThrow(/attention "fused" is not valid: use unfused or flash/);
    expect(() => predictStep({ ...base, worldSize: 128, strategy: 'zero3', microBatch: 1, accumulation: 1, attention: 'fast' as 'flash' })).toThrow(
      /attention fast is not valid: use unfused or flash/,
    );
  });
});

describe('fastestPartition', () => {
  const base = { cluster: clusterPreset('p4d'), model: modelPreset('100b'), accounting: 'paper' as const, granularity: 'module' as const };
  const samplesPerSecond = (S: number, microBatch: number): number =>
    predictStep({ ...base, worldSize: 512, strategy: 'mics', partitionSize: S, microBatch, sequence: 2048, accumulation: 1 }).samplesPerSecond;

  it('gives each partition size its largest fitting micro-batch and returns the fastest of them', () => {
    const best = fastestPartition(base, 512);
    expect(best.microBatch).toBe(largestMicroBatch(base, 'mics', 512, best.partitionSize));
    for (const S of [64, 128, 256, 512]) {
      const b = largestMicroBatch(base, 'mics', 512, S);
      if (b > 0) expect(best.prediction.samplesPerSecond).toBeGreaterThanOrEqual(samplesPerSecond(S, b));
    }
  });

  it('holds a given micro-batch and skips the partition sizes it does not fit', () => {
    const best = fastestPartition({ ...base, microBatch: 2 }, 512);
    expect(best.microBatch).toBe(2);
    // S = 64 fits one sequence of 2048 tokens, not two: it is not a candidate.
    expect(largestMicroBatch(base, 'mics', 512, 64)).toBe(1);
    expect(best.partitionSize).toBeGreaterThan(64);
    for (const S of [128, 256, 512]) {
      if (largestMicroBatch(base, 'mics', 512, S) >= 2) expect(best.prediction.samplesPerSecond).toBeGreaterThanOrEqual(samplesPerSecond(S, 2));
    }
    expect(() => fastestPartition({ ...base, microBatch: 64 }, 512)).toThrow(/fits at no partition size on 512 GPUs with micro-batch 64/);
  });
});
