/** The engine's step schedule: overlap, issue order and the boundary, on hand-computed timelines. */
import { clusterFromJson, predictStep, modelPreset, simulateUnits, strategyGroups, type ClusterPreset, type UnitScheduleInput } from '../../lib/plan';

/** One node of 2 ranks, no latency, 1 GB/s per GPU: an all-gather of 2e9 one-byte elements takes 1 s. */
const node2: ClusterPreset = clusterFromJson({
  gpusPerNode: 2,
  device: { memoryBytes: 1e12, peakFlops: 1e12, computeEfficiency: 1, memoryBandwidth: 1e30 },
  intra: { bandwidth: 1e9, hopLatency: 0 },
  inter: { bandwidth: 1e9, hopLatency: 0 },
  collectiveLatency: 0,
  allReduceLatencyFactor: 1,
});

const base: UnitScheduleInput = {
  cluster: node2,
  worldSize: 2,
  strategy: 'mics',
  partitionSize: 2,
  units: [
    { elements: 2e9, forwardSeconds: 1, backwardSeconds: 2 },
    { elements: 2e9, forwardSeconds: 1, backwardSeconds: 2 },
  ],
  accumulation: 1,
  gatherBytes: 1,
  reduceBytes: 1,
  optimizerBytesPerParameter: 30,
  prefetchDepth: 1,
};

describe('the step schedule', () => {
  it('prefetches the next unit during compute and re-gathers in backward (hand timeline: 9 s)', () => {
    // gather 0: 0-1, gather 1: 1-2; forward 0: 1-2, forward 1: 2-3; re-gather 1: 3-4, re-gather 0: 4-5;
    // backward 1: 4-6, reduce-scatter 1: 6-7; backward 0: 6-8, reduce-scatter 0: 8-9.
    const s = simulateUnits(base);
    expect(s.stepTime).toBeCloseTo(9, 9);
    expect(s.computeTime).toBe(6);
    expect(s.exposedCommTime).toBeCloseTo(3, 9);
    expect(s.comm.allGather).toBeCloseTo(4, 9);
    expect(s.comm.reduceScatter).toBeCloseTo(2, 9);
  });

  it('without prefetch, every gather waits for the previous unit to finish (hand timeline: 11 s)', () => {
    // gather 0: 0-1, forward 0: 1-2, gather 1: 2-3, forward 1: 3-4; re-gather 1: 4-5, backward 1: 5-7,
    // re-gather 0 (issued first) 7-8, reduce-scatter 1: 8-9, backward 0: 8-10, reduce-scatter 0: 10-11.
    expect(simulateUnits({ ...base, prefetchDepth: 0 }).stepTime).toBeCloseTo(11, 9);
  });

  it('hides all communication when compute is long enough, but the first gather, the first re-gather and the last reduce-scatter', () => {
    // The last unit is released after forward and gathered again for backward, as the engine does.
    const units = base.units.map((u) => ({ ...u, forwardSeconds: 10, backwardSeconds: 20 }));
    const s = simulateUnits({ ...base, units });
    expect(s.stepTime).toBeCloseTo(60 + 1 + 1 + 1, 9);
  });

  it('pays the replication all-reduce once per step with accumulation (two-hop sync)', () => {
    const four = { ...base, cluster: { ...node2, gpusPerNode: 4 }, worldSize: 4 };
    const one = simulateUnits({ ...four, accumulation: 1 });
    const two = simulateUnits({ ...four, accumulation: 2 });
    expect(one.comm.allReduce).toBeGreaterThan(0);
    expect(two.comm.allReduce).toBeCloseTo(one.comm.allReduce, 12);
    expect(two.comm.reduceScatter).toBeCloseTo(2 * one.comm.reduceScatter, 12);
  });

  it('a partition group spanning nodes gathers and reduce-scatters hierarchically: (S-G)/S of each unit crosses each node', () => {
    // 2 nodes x 2 ranks, S = 4, one unit of 4e9 one-byte elements, no compute: per micro-step a gather
    // and a re-gather (output 4e9 each) and a reduce-scatter (input 4e9): 3 x (4-2)/4 x 4e9 bytes leave each node.
    const spanning = { ...base, worldSize: 4, partitionSize: 4, units: [{ elements: 4e9, forwardSeconds: 0, backwardSeconds: 0 }] };
    const hier = simulateUnits(spanning);
    const flat = simulateUnits({ ...spanning, hierarchical: false });
    expect(hier.groups.hierarchical).toBe(true);
    expect(hier.interBytesPerNode).toBeCloseTo(3 * (2 / 4) * 4e9, 0);
    expect(flat.interBytesPerNode).toBeCloseTo(3 * (3 / 4) * 4e9, 0);
  });

  it('HSDP all-reduces on every micro-step unless deferred', () => {
    const four = { ...base, cluster: { ...node2, gpusPerNode: 2 }, worldSize: 4, strategy: 'hsdp' as const, partitionSize: 2, accumulation: 2 };
    const every = simulateUnits(four);
    const deferred = simulateUnits({ ...four, deferAllReduce: true });
    expect(every.comm.allReduce).toBeCloseTo(2 * deferred.comm.allReduce, 12);
  });
});

describe('strategy groups', () => {
  const p4d = { name: 'x', gpusPerNode: 8 } as ClusterPreset;
  it('ZeRO-3 is S = W (flat), DDP S = 1, MiCS hierarchical when S is whole nodes', () => {
    expect(strategyGroups({ cluster: p4d, worldSize: 64, strategy: 'zero3' })).toMatchObject({ partitionSize: 64, hierarchical: false, replicationSize: 1 });
    expect(strategyGroups({ cluster: p4d, worldSize: 64, strategy: 'ddp' })).toMatchObject({ partitionSize: 1, replicationSize: 64 });
    expect(strategyGroups({ cluster: p4d, worldSize: 64, strategy: 'mics', partitionSize: 16 })).toMatchObject({ hierarchical: true, nodesPerPartition: 2 });
    expect(strategyGroups({ cluster: p4d, worldSize: 64, strategy: 'mics', partitionSize: 4 })).toMatchObject({ hierarchical: false, nodesPerPartition: 1 });
    expect(strategyGroups({ cluster: p4d, worldSize: 64, strategy: 'hsdp' })).toMatchObject({ partitionSize: 8, replicationSize: 8 });
  });

  it('rejects a world that is not whole nodes and a partition size that does not divide it, by name', () => {
    expect(() => strategyGroups({ cluster: p4d, worldSize: 12, strategy: 'zero3' })).toThrow(/world size 12 is not a whole number of x nodes .* use a multiple of 8/);
    expect(() => strategyGroups({ cluster: p4d, worldSize: 64, strategy: 'mics', partitionSize: 24 })).toThrow(/partition size 24 does not divide world size 64/);
    expect(() => strategyGroups({ cluster: p4d, worldSize: 64, strategy: 'nope' as 'mics' })).toThrow(/unknown strategy 'nope'/);
  });
});

describe('predictStep', () => {
  it('turns FLOPs into time at the preset\'s efficiency and reports TFLOPS accordingly when nothing is communicated', () => {
    const m = modelPreset('llama-7b');
    const p = predictStep({ cluster: node2, model: m, worldSize: 1, strategy: 'ddp', microBatch: 1, sequence: 1024, accumulation: 1 });
    // One rank: no communication; executed TFLOPS = peak x efficiency = 1 TFLOPS, less the optimizer's share.
    expect(p.exposedCommTime).toBe(0);
    expect(p.tflopsPerGpu).toBeCloseTo(1, 6);
  });

  it('rejects a bad micro-batch or fragmentation margin by name', () => {
    const m = modelPreset('llama-7b');
    const setup = { cluster: node2, model: m, worldSize: 2, strategy: 'zero3' as const, sequence: 128, accumulation: 1 };
    expect(() => predictStep({ ...setup, microBatch: 0 })).toThrow(/micro-batch 0 is not valid/);
    expect(() => predictStep({ ...setup, microBatch: 1, fragmentation: 1 })).toThrow(/fragmentation margin 1 is not valid/);
  });
});
