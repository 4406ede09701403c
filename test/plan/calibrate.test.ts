/** The emulated preset is read off bench measurements (nothing fitted); the step-bench hook predicts measured steps. */
import { clusterFromJson, compareStepBench, emulatedPresetFromBench, type BenchJson } from '../../lib/plan';

const row = (op: string, size: number, timeUs: number, busbw: number) => ({ op, size, outOfPlace: { timeUs, busbw } });

describe('emulatedPresetFromBench', () => {
  const intra: BenchJson = {
    header: 'nranks 4 nodes 1 backend cpu transport shm iters 5',
    rows: [row('all_gather', 4096, 100, 0.03), row('all_gather', 16777216, 5000, 3), row('reduce_scatter', 4096, 110, 0.03), row('reduce_scatter', 16777216, 6000, 2)],
  };
  const inter: BenchJson = {
    header: 'nranks 4 nodes 2 backend cpu transport tcp iters 5',
    rows: [row('all_gather', 4096, 400, 0.01), row('all_gather', 16777216, 140000, 0.1)],
  };
  const preset = emulatedPresetFromBench({ intra, inter, copyBandwidth: 8e9, hostMemoryBytes: 16 * 1024 ** 3, cores: 2, host: 'h', measuredAt: 't' });

  it('reads each number off the measurements: fastest op for fixed costs, median for bandwidths', () => {
    expect(preset.gpusPerNode).toBe(2);
    expect(preset.intra.bandwidth).toBe(3e9);
    expect(preset.inter.bandwidth).toBe(0.1e9);
    expect(preset.collectiveLatency).toBeCloseTo(100e-6, 12);
    expect(preset.inter.hopLatency).toBeCloseTo(300e-6, 12);
    // 1/2 GB/s - 1/3 GB/s = 1/6 GB/s: reductions add 6 GB/s' worth of time.
    expect(preset.reduceBandwidth).toBeCloseTo(6e9, 0);
    expect(preset.device.memoryBytes).toBe(4 * 1024 ** 3);
    expect(preset.emulated?.measurements).toHaveLength(5);
  });

  it('uses every one-node run: a descheduled run does not become the start-up latency', () => {
    // Node 0's run read a scheduler time slice at 4 KiB (out of place); its in-place 64 KiB op and node 1's 4 KiB op did not.
    const noisy: BenchJson = {
      header: intra.header,
      rows: [
        { op: 'all_gather', size: 4096, outOfPlace: { timeUs: 3900, busbw: 0.001 }, inPlace: { timeUs: 4000, busbw: 0.001 } },
        { op: 'all_gather', size: 65536, outOfPlace: { timeUs: 1900, busbw: 0.03 }, inPlace: { timeUs: 40, busbw: 1.5 } },
        { op: 'all_gather', size: 16777216, outOfPlace: { timeUs: 7000, busbw: 1.8 }, inPlace: { timeUs: 4000, busbw: 3.2 } },
        ...intra.rows.filter((r) => r.op === 'reduce_scatter'),
      ],
    };
    const both = emulatedPresetFromBench({ intra: [noisy, intra], inter, copyBandwidth: 8e9, hostMemoryBytes: 16 * 1024 ** 3, cores: 2, host: 'h', measuredAt: 't' });
    expect(both.collectiveLatency).toBeCloseTo(40e-6, 12);
    expect(both.inter.hopLatency).toBeCloseTo(360e-6, 12);
    // Median of 1.8, 3.2 (node 0, both placements) and 3 (node 1): 3 GB/s.
    expect(both.intra.bandwidth).toBeCloseTo(3e9, 0);
    const alone = emulatedPresetFromBench({ intra: noisy, inter, copyBandwidth: 8e9, hostMemoryBytes: 16 * 1024 ** 3, cores: 2, host: 'h', measuredAt: 't' });
    expect(alone.collectiveLatency).toBeCloseTo(40e-6, 12);
    expect(() =>
      emulatedPresetFromBench({ intra: [intra, { ...intra, header: 'nranks 8 nodes 1' }], inter, copyBandwidth: 1, hostMemoryBytes: 1, cores: 1, host: 'h', measuredAt: 't' }),
    ).toThrow(/intra-node bench: the runs differ in layout/);
  });

  it('refuses benches from the wrong layout, by name', () => {
    expect(() => emulatedPresetFromBench({ ...{ intra: inter, inter }, copyBandwidth: 1, hostMemoryBytes: 1, cores: 1, host: 'h', measuredAt: 't' })).toThrow(
      /intra-node bench ran on 2 nodes: run it with --emulate-nodes 1/,
    );
    expect(() => emulatedPresetFromBench({ intra, inter: { header: 'nothing', rows: [] }, copyBandwidth: 1, hostMemoryBytes: 1, cores: 1, host: 'h', measuredAt: 't' })).toThrow(
      /inter-node bench: the bench header has no 'nranks N'/,
    );
  });
});

describe('compareStepBench (the hook for mics bench step --json)', () => {
  // Two ranks on one node, 1 GB/s per GPU, no latency (as in the schedule's hand timelines).
  const cluster = clusterFromJson({
    gpusPerNode: 2,
    device: { memoryBytes: 1e12, peakFlops: 1e12, computeEfficiency: 1, memoryBandwidth: 1e30 },
    intra: { bandwidth: 1e9, hopLatency: 0 },
    inter: { bandwidth: 1e9, hopLatency: 0 },
    collectiveLatency: 0,
  });

  it('predicts a measured step from its units and measured compute, and reports the error', () => {
    // Two ranks on one node, 1 GB/s: each 2e9-byte unit gathers in 1 s; compute 6 s (2 forward, 4 backward): the 9 s timeline.
    const [c] = compareStepBench(cluster, [
      { strategy: 'mics', worldSize: 2, ranksPerNode: 2, partitionSize: 2, unitElements: [2e9, 2e9], gatherBytes: 1, reduceBytes: 1, accumulation: 1, computeSeconds: 6, stepSeconds: 10 },
    ]);
    expect(c.predicted).toBeCloseTo(9, 6);
    expect(c.error).toBeCloseTo(0.1, 6);
    expect(c).toMatchObject({ hierarchical: false, accumulation: 1, computeSeconds: 6 });
  });

  it('gives the compute per optimizer step: per micro-step times the accumulation', () => {
    const [c] = compareStepBench(cluster, [
      { strategy: 'mics', worldSize: 2, ranksPerNode: 2, partitionSize: 2, unitElements: [2e9, 2e9], gatherBytes: 1, reduceBytes: 1, accumulation: 4, computeSeconds: 6, stepSeconds: 40 },
    ]);
    expect(c.computeSeconds).toBe(24);
  });

  it('names a malformed result', () => {
    expect(() => compareStepBench(cluster, [{ strategy: 'fsdp' } as never])).toThrow(/step bench result 0: unknown strategy 'fsdp'/);
  });
});
