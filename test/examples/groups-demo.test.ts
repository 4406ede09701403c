/** The README's main job runs under mics-launch and every rank reports correct data. */
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../helpers/run-node';

describe('examples/groups-demo.js (the README main job)', () => {
  it('on 2 emulated nodes of 2 ranks: hierarchical allGather and reduceScatter are correct on every rank', () => {
    const result = spawnSync(
      process.execPath,
      ['dist/cli/mics-launch.js', '--nproc-per-node', '4', '--emulate-nodes', '2', '--master-port', '0', 'examples/groups-demo.js'],
      { cwd: repoRoot, encoding: 'utf8', timeout: 120000, env: { ...process.env, DEMO_SHARD_ELEMENTS: '65537' } },
    );
    expect([result.status, result.stderr]).toEqual([0, expect.any(String)]);
    for (let rank = 0; rank < 4; rank++) {
      const line = result.stdout.split('\n').find((l) => l.startsWith(`[rank ${rank}] rank ${rank} `));
      expect(line).toBeDefined();
      expect(line).toMatch(/allGather hierarchical \(2 nodes x 2 ranks\): ok/);
      expect(line).toMatch(/reduceScatter: ok \(each element = 4\)/);
      expect(line).toMatch(/busbw [\d.]+ GB\/s/);
    }
  }, 150000);
});
