/** Cluster presets: every number sourced, aliases, and files checked field by field. */
import { CLUSTER_PRESETS, clusterFromJson, clusterPreset } from '../../lib/plan';

describe('cluster presets', () => {
  it('give every preset a source for its devices, links and efficiency', () => {
    for (const preset of Object.values(CLUSTER_PRESETS)) {
      const what = preset.sources.map((s) => s.what).join(' | ');
      expect([preset.name, what]).toEqual([preset.name, expect.stringMatching(/intra-node bandwidth.*inter-node bandwidth|inter-node bandwidth.*intra-node bandwidth/)]);
      for (const s of preset.sources) expect(s.source.length).toBeGreaterThan(10);
      expect(preset.device.computeEfficiency).toBeGreaterThan(0);
      expect(preset.device.computeEfficiency).toBeLessThanOrEqual(1);
    }
  });

  it('describe the instances as AWS and NVIDIA publish them', () => {
    const p4d = clusterPreset('p4d.24xlarge');
    expect([p4d.gpusPerNode, p4d.device.memoryBytes / 1024 ** 3, p4d.device.peakFlops, p4d.inter.lineRate]).toEqual([8, 40, 312e12, 50e9]);
    expect(clusterPreset('p4de').device.memoryBytes / 1024 ** 3).toBe(80);
    expect(clusterPreset('p5').inter.lineRate).toBe(400e9);
    expect(clusterPreset('p3dn').inter.lineRate).toBe(12.5e9);
  });

  it('read a cluster from JSON and name the field that is wrong', () => {
    const json = {
      gpusPerNode: 4,
      device: { memoryBytes: 24e9, peakFlops: 1e14, computeEfficiency: 0.4, memoryBandwidth: 1e12 },
      intra: { bandwidth: 50e9, hopLatency: 2e-6 },
      inter: { bandwidth: 5e9, hopLatency: 1e-5 },
    };
    const c = clusterFromJson(json, 'mine.json');
    expect([c.gpusPerNode, c.inter.bandwidth, c.collectiveLatency]).toEqual([4, 5e9, 8.4e-6]);
    expect(() => clusterFromJson({ ...json, gpusPerNode: 2.5 }, 'mine.json')).toThrow(/mine\.json\.gpusPerNode must be an integer > 0 and <= 1048576, got 2\.5/);
    expect(() => clusterFromJson({ ...json, device: { ...json.device, computeEfficiency: 2 } }, 'mine.json')).toThrow(
      /mine\.json\.device\.computeEfficiency must be a number > 0 and <= 1, got 2/,
    );
    expect(() => clusterFromJson({ ...json, intra: 'fast' }, 'mine.json')).toThrow(/mine\.json\.intra must be an object, got "fast"/);
  });

  it('take at most 2^20 GPUs per node, the most GPUs a planned job may have (PLAN_LIMITS.gpus)', () => {
    const json = {
      gpusPerNode: 2 ** 20,
      device: { memoryBytes: 24e9, peakFlops: 1e14, computeEfficiency: 0.4, memoryBandwidth: 1e12 },
      intra: { bandwidth: 50e9, hopLatency: 2e-6 },
      inter: { bandwidth: 5e9, hopLatency: 1e-5 },
    };
    expect(clusterFromJson(json, 'big.json').gpusPerNode).toBe(2 ** 20);
    expect(() => clusterFromJson({ ...json, gpusPerNode: 2 ** 20 + 1 }, 'big.json')).toThrow(
      /^big\.json\.gpusPerNode must be an integer > 0 and <= 1048576, got 1048577$/,
    );
  });

  it('name a value that is not JSON-like in a few words, never spelling out a large one', () => {
    const big = {
      gpusPerNode: 'x'.repeat(1e6),
      device: { memoryBytes: 24e9, peakFlops: 1e14, computeEfficiency: 0.4, memoryBandwidth: 1e12 },
      intra: { bandwidth: 50e9, hopLatency: 2e-6 },
      inter: { bandwidth: 5e9, hopLatency: 1e-5 },
    };
    const message = (() => {
      try {
        clusterFromJson(big, 'big.json');
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(message).toMatch(/^big\.json\.gpusPerNode must be an integer > 0 and <= 1048576, got "x{64}"\.\.\. \(1000000 characters\)$/);
    expect(() => clusterFromJson(10n, 'mine.json')).toThrow(expect.objectContaining({ code: 'MICS_INVALID_ARGUMENT', message: 'mine.json must be an object, got 10n' }));
  });

  it('clusterPreset takes a name: anything else is a MicsError naming the valid presets, not a TypeError', () => {
    for (const bad of [5, undefined, null, {}, ['p4d']]) {
      expect(() => clusterPreset(bad as unknown as string)).toThrow(
        expect.objectContaining({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(/^clusterPreset: name .* is not valid: use a string, one of p3dn, p4d, p4de, p5/) }),
      );
    }
    expect(() => clusterPreset(5 as unknown as string)).toThrow(/^clusterPreset: name 5 is not valid/);
  });
});
