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
    expect(() => clusterFromJson({ ...json, gpusPerNode: 2.5 }, 'mine.json')).toThrow(/mine\.json\.gpusPerNode must be an integer > 0, got 2\.5/);
    expect(() => clusterFromJson({ ...json, device: { ...json.device, computeEfficiency: 2 } }, 'mine.json')).toThrow(
      /mine\.json\.device\.computeEfficiency must be a number > 0 and <= 1, got 2/,
    );
    expect(() => clusterFromJson({ ...json, intra: 'fast' }, 'mine.json')).toThrow(/mine\.json\.intra must be an object, got "fast"/);
  });
});
