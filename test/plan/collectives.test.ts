/** The alpha-beta collective model against hand-computed cases. */
import { clusterFromJson, hierarchicalAllGather, hierarchicalReduceScatter, linkBandwidth, pipelineChunks, ringCollective, type ClusterPreset } from '../../lib/plan';

/** 4 GPUs per node; 100 GB/s inside, 10 GB/s per node between; 2 us start-up, 1 us / 5 us per hop. */
const cluster: ClusterPreset = clusterFromJson({
  name: 'test',
  gpusPerNode: 4,
  device: { memoryBytes: 16e9, peakFlops: 1e14, computeEfficiency: 0.5, memoryBandwidth: 1e12 },
  intra: { bandwidth: 100e9, hopLatency: 1e-6 },
  inter: { bandwidth: 10e9, hopLatency: 5e-6 },
  collectiveLatency: 2e-6,
  allReduceLatencyFactor: 1,
});
const M = 1e9;

describe('ring collectives', () => {
  it('all-gather of M bytes over n ranks of one node: latency + (n-1) hops + (n-1)/n M / bandwidth', () => {
    const c = ringCollective(cluster, 'allGather', M, { ranks: 4, perNode: 4 });
    expect(c.time).toBeCloseTo(2e-6 + 3 * 1e-6 + (3 / 4) * (M / 100e9), 12);
    expect(c.intraBytesPerGpu).toBe(0.75e9);
    expect(c.interBytesPerNode).toBe(0);
  });

  it('a ring over two nodes: (n-1)/n M leaves each node, bound by the slower link', () => {
    const c = ringCollective(cluster, 'allGather', M, { ranks: 8, perNode: 4 });
    expect(c.interBytesPerNode).toBe((7 / 8) * M);
    expect(c.latency).toBeCloseTo(2e-6 + 6 * 1e-6 + 1 * 5e-6, 12);
    expect(c.time).toBeCloseTo(c.latency + ((7 / 8) * M) / 10e9, 12);
  });

  it('all-reduce moves twice the bytes of a reduce-scatter', () => {
    const rs = ringCollective(cluster, 'reduceScatter', M, { ranks: 8, perNode: 4 });
    const ar = ringCollective(cluster, 'allReduce', M, { ranks: 8, perNode: 4 });
    expect(ar.interBytesPerNode).toBe(2 * rs.interBytesPerNode);
  });

  it('groups with one rank per node share the node\'s NICs (replication groups)', () => {
    // 4 groups of 2 ranks (one per node) run at once: each node sends for all 4.
    const c = ringCollective(cluster, 'allReduce', M, { ranks: 2, perNode: 1 });
    expect(c.interBytesPerNode).toBe(4 * (2 * (1 / 2) * M));
    expect(c.time).toBeCloseTo(c.latency + c.interBytesPerNode / 10e9, 12);
  });

  it('one rank or no bytes costs nothing', () => {
    expect(ringCollective(cluster, 'allGather', M, { ranks: 1, perNode: 1 }).time).toBe(0);
    expect(ringCollective(cluster, 'allReduce', 0, { ranks: 8, perNode: 4 }).time).toBe(0);
  });
});

/** (S-G)/S of M leaves each node hierarchically, (S-1)/S flat, for S = 4 x 2, 4 and 8 nodes. */
function expectHierarchicalVolumes(kind: 'allGather' | 'reduceScatter', hierarchical: typeof hierarchicalAllGather): void {
  for (const nodes of [2, 4, 8]) {
    const S = nodes * 4;
    const hier = hierarchical(cluster, M, nodes);
    const flat = ringCollective(cluster, kind, M, { ranks: S, perNode: 4 });
    expect(hier.interBytesPerNode).toBeCloseTo(((S - 4) / S) * M, 0);
    expect(flat.interBytesPerNode).toBeCloseTo(((S - 1) / S) * M, 0);
  }
}

describe('hierarchical all-gather', () => {
  it('sends (S-G)/S of the output between nodes instead of (S-1)/S', () => {
    expectHierarchicalVolumes('allGather', hierarchicalAllGather);
  });

  it('costs stage 1 across nodes + the re-arrangement copy + stage 2 inside the node, one after the other for a shard under 512 KiB', () => {
    // S = 8, shard 256 KiB (one chunk): stage 1 is 4 concurrent 2-rank rings over m/4 bytes, stage 2 one 4-rank all-gather of m.
    const m = 8 * 256 * 1024;
    const stage1 = 2e-6 + 5e-6 + (4 * (1 / 2) * (m / 4)) / 10e9;
    const copy = (4 * (m / 4)) / 1e12;
    const stage2 = 2e-6 + 3e-6 + (3 / 4) * (m / 100e9);
    expect(hierarchicalAllGather(cluster, m, 2).time).toBeCloseTo(stage1 + copy + stage2, 12);
    // Ring hops: (N-1) + (G-1) = 4 instead of S-1 = 7.
    expect(hierarchicalAllGather(cluster, m, 2).latency).toBeCloseTo(2 * 2e-6 + 5e-6 + 3 * 1e-6, 12);
  });

  it('pipelines a large shard in 16 chunks: each pays both latencies, the slower stage sets the pace', () => {
    // S = 8, M = 1e9: shard 125 MB, 16 chunks. Stage 1 (across nodes) is the slower one.
    expect(pipelineChunks(M / 8, 16)).toBe(16);
    expect(pipelineChunks(1024 * 1024, 16)).toBe(8); // chunks of at least 128 KiB
    expect(pipelineChunks(256 * 1024, 16)).toBe(1); // under 512 KiB: not pipelined
    const piece1 = 7e-6 + (4 * (1 / 2) * (M / 4)) / 10e9 / 16;
    const piece2 = 5e-6 + ((3 / 4) * (M / 100e9)) / 16;
    const copy = (4 * (M / 4)) / 1e12;
    expect(hierarchicalAllGather(cluster, M, 2).time).toBeCloseTo(piece1 + piece2 + 15 * piece1 + copy, 12);
  });
});

describe('hierarchical reduce-scatter', () => {
  it('sends (S-G)/S of the input across each node instead of (S-1)/S', () => {
    expectHierarchicalVolumes('reduceScatter', hierarchicalReduceScatter);
  });

  it('costs the packing copy + stage 1 inside the node on all of it + stage 2 across nodes on 1/G, pipelined in 64 chunks', () => {
    // S = 8, shard 256 KiB (one chunk): stage 1 one 4-rank reduce-scatter of m, stage 2 four concurrent 2-rank rings over m/4.
    const m = 8 * 256 * 1024;
    const copy = (2 * m) / 1e12;
    const stage1 = 2e-6 + 3e-6 + (3 / 4) * (m / 100e9);
    const stage2 = 2e-6 + 5e-6 + (4 * (1 / 2) * (m / 4)) / 10e9;
    expect(hierarchicalReduceScatter(cluster, m, 2).time).toBeCloseTo(copy + stage1 + stage2, 12);
    expect(hierarchicalReduceScatter(cluster, m, 2).latency).toBeCloseTo(2 * 2e-6 + 3 * 1e-6 + 5e-6, 12);
    // M = 1e9: 64 chunks, stage 2 (across nodes) paces.
    const piece1 = 5e-6 + ((3 / 4) * (M / 100e9)) / 64;
    const piece2 = 7e-6 + (4 * (1 / 2) * (M / 4)) / 10e9 / 64;
    expect(hierarchicalReduceScatter(cluster, M, 2).time).toBeCloseTo((2 * M) / 1e12 + piece1 + piece2 + 63 * piece2, 12);
    // One node: the plain ring.
    expect(hierarchicalReduceScatter(cluster, M, 1)).toEqual(ringCollective(cluster, 'reduceScatter', M, { ranks: 4, perNode: 4 }));
  });
});

describe('inter-node bandwidth at scale', () => {
  it('falls as (reference / nodes)^exponent beyond the reference node count, never above the measurement', () => {
    const link = { name: 'efa', bandwidth: 30e9, lineRate: 50e9, hopLatency: 1e-5, referenceNodes: 4, scaleExponent: 0.2 };
    expect(linkBandwidth(link, 2)).toBe(30e9);
    expect(linkBandwidth(link, 4)).toBe(30e9);
    expect(linkBandwidth(link, 64)).toBeCloseTo(30e9 * (4 / 64) ** 0.2, 0);
    expect(linkBandwidth({ ...link, scaleExponent: 0 }, 64)).toBe(30e9);
  });
});
