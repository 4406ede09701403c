/**
 * The programs the docs show for mics/tfjs run as written, in a project that has mics
 * and @tensorflow/tfjs installed, and learn: docs/training.md's diff from a plain tfjs
 * loop to a sharded one (both programs rebuilt from it: '-' and ' ' lines are the
 * plain one, '+' and ' ' the sharded one), and the README's program.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../../helpers/run-node';

function programsFromDiff(): { plain: string; sharded: string } {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'training.md'), 'utf8');
  const block = /```diff\n([\s\S]*?)```/.exec(doc);
  expect(block).not.toBeNull();
  const plain: string[] = [];
  const sharded: string[] = [];
  for (const line of block![1].replace(/\n$/, '').split('\n')) {
    const [mark, text] = [line[0] ?? ' ', line.slice(1)];
    expect([line, [' ', '-', '+'].includes(mark)]).toEqual([line, true]);
    if (mark !== '+') plain.push(text);
    if (mark !== '-') sharded.push(text);
  }
  return { plain: plain.join('\n') + '\n', sharded: sharded.join('\n') + '\n' };
}

/** The "mean loss" of every epoch the program printed (rank 0's, for the sharded one). */
function losses(stdout: string): number[] {
  return [...stdout.matchAll(/epoch \d+: mean loss ([\d.]+)/g)].map((m) => Number(m[1]));
}

const launcher = path.join(repoRoot, 'dist', 'cli', 'mics-launch.js');

describe('docs/training.md and the README', () => {
  let project: string;
  beforeAll(() => {
    // a user's project: its own directory, mics and tfjs under node_modules
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-training-doc-'));
    fs.mkdirSync(path.join(project, 'node_modules'));
    fs.symlinkSync(repoRoot, path.join(project, 'node_modules', 'mics'));
    fs.symlinkSync(path.join(repoRoot, 'node_modules', '@tensorflow'), path.join(project, 'node_modules', '@tensorflow'));
    const { plain, sharded } = programsFromDiff();
    fs.writeFileSync(path.join(project, 'plain.js'), plain);
    fs.writeFileSync(path.join(project, 'train.js'), sharded);
    const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const program = /```js\n(const tf = require\('@tensorflow\/tfjs'\);[\s\S]*?)```/.exec(readme);
    expect(program).not.toBeNull();
    fs.writeFileSync(path.join(project, 'readme.js'), program![1]);
  });
  afterAll(() => fs.rmSync(project, { recursive: true, force: true }));

  it('the plain program runs with node and learns', () => {
    const r = spawnSync(process.execPath, ['plain.js'], { cwd: project, encoding: 'utf8', timeout: 60000 });
    expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
    const l = losses(r.stdout);
    expect(l).toHaveLength(4);
    expect(l[3]).toBeLessThan(l[0] * 0.5);
  });

  it('the sharded program runs under mics-launch on 2 ranks and learns as well', () => {
    const r = spawnSync(process.execPath, [launcher, '--nproc-per-node', '2', '--master-port', '0', 'train.js'], { cwd: project, encoding: 'utf8', timeout: 90000 });
    expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
    expect(r.stdout).not.toMatch(/\[rank 1\] epoch/); // rank 0 prints
    const l = losses(r.stdout);
    expect(l).toHaveLength(4);
    expect(l[3]).toBeLessThan(l[0] * 0.5);
  }, 120000);

  it("the README's program runs under mics-launch on 2 ranks and fits its data", () => {
    const r = spawnSync(process.execPath, [launcher, '--nproc-per-node', '2', '--master-port', '0', 'readme.js'], { cwd: project, encoding: 'utf8', timeout: 90000 });
    expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
    const l = [...r.stdout.matchAll(/\[rank 0\] step (\d+): loss ([\d.]+)/g)].map((m) => Number(m[2]));
    expect(l).toHaveLength(4);
    expect(l[3]).toBeLessThan(Math.max(l[0] / 10, 1e-3));
  }, 120000);
});
