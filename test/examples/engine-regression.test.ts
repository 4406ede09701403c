/** docs/engine.md's training loop (examples/engine-regression.js) runs as shown and learns. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-node';

const example = path.join(repoRoot, 'examples', 'engine-regression.js');

describe('examples/engine-regression.js (docs/engine.md)', () => {
  it('is shown in docs/engine.md exactly as it is', () => {
    const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'engine.md'), 'utf8');
    expect(doc).toContain('```js\n' + fs.readFileSync(example, 'utf8') + '```');
  });

  it('on 2 emulated nodes of 2 ranks (S = 4, hierarchical): every rank ends with the loss 100x lower than at step 1', () => {
    const result = spawnSync(
      process.execPath,
      ['dist/cli/mics-launch.js', '--nproc-per-node', '4', '--emulate-nodes', '2', '--master-port', '0', 'examples/engine-regression.js'],
      { cwd: repoRoot, encoding: 'utf8', timeout: 120000 },
    );
    expect([result.status, result.stderr]).toEqual([0, expect.any(String)]);
    for (let rank = 0; rank < 4; rank++) {
      const first = new RegExp(`\\[rank ${rank}\\] rank ${rank} step 1: loss ([\\d.]+)`).exec(result.stdout);
      const last = new RegExp(`\\[rank ${rank}\\] rank ${rank} done: final loss ([\\d.]+)`).exec(result.stdout);
      expect([rank, first !== null, last !== null]).toEqual([rank, true, true]);
      expect(Number(last![1])).toBeLessThan(Number(first![1]) / 100);
    }
  }, 150000);
});
