/**
 * The README's main job, examples/mnist.js, at reduced size (800 digits to train on,
 * 200 to test, one short epoch) on 4 ranks as 2 emulated nodes: it trains (the loss
 * falls), prints the test accuracy, writes the curve, exits 0; it saves a checkpoint
 * per epoch and --resume continues from it; a new run in the same directory does not
 * trip over the earlier run's checkpoints. The full-size run is the benchmark
 * (docs/benchmarks.md).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-node';

const SMALL = ['--train', '800', '--test', '200', '--batch', '25', '--accumulation', '2', '--progress', 'lines'];

function launch(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    process.execPath,
    ['dist/cli/mics-launch.js', '--nproc-per-node', '4', '--emulate-nodes', '2', '--master-port', '0', 'examples/mnist.js', ...SMALL, ...args],
    { cwd: repoRoot, encoding: 'utf8', timeout: 120000 },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('examples/mnist.js (the main job) at reduced size', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-mnist-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('trains on 4 ranks of 2 emulated nodes: the loss falls, it prints the test accuracy, writes the curve and exits 0', () => {
    const svg = path.join(dir, 'curve.svg');
    const r = launch(['--epochs', '1', '--checkpoint-dir', path.join(dir, 'ck'), '--svg', svg]);
    expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
    expect(r.stdout).toMatch(/\[rank 0\] mnist: 800 digits to train on, 200 to test; 4 ranks, partition groups of 4 \(hierarchical, spanning nodes\), global batch 200 \(4 x 2 x 25\), 4 steps per epoch/);
    expect(r.stdout).toMatch(/\[rank 0\] epoch 1\/1: loss [\d.]+, accuracy [\d.]+%, test accuracy [\d.]+%, \d+ samples\/s/);
    const falls = /training loss ([\d.]+) at step 1 -> ([\d.]+) at step 4/.exec(r.stdout);
    expect(falls).not.toBeNull();
    expect(Number(falls![2])).toBeLessThan(Number(falls![1]) * 0.8);
    const accuracy = /\[rank 0\] test accuracy ([\d.]+)% on 200 held-out digits after 1 epoch,/.exec(r.stdout);
    expect(accuracy).not.toBeNull();
    expect(Number(accuracy![1])).toBeGreaterThan(30); // 4 steps from 10% (chance)
    const curve = fs.readFileSync(svg, 'utf8');
    expect(curve).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(curve.match(/<polyline /g)).toHaveLength(3);
    // only rank 0 prints
    expect(r.stdout).not.toMatch(/\[rank [123]\]/);
  }, 150000);

  it('a new run without --resume in the directory of an earlier one starts afresh and saves beside it', () => {
    const ck = path.join(dir, 'ck');
    const before = fs.readFileSync(path.join(ck, 'latest'), 'utf8').trim();
    const r = launch(['--epochs', '1', '--checkpoint-dir', ck, '--svg', path.join(dir, 'again.svg')]);
    expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
    expect(r.stdout).toMatch(/\[rank 0\] epoch 1\/1: .*checkpoint saved in/);
    // the same step, under this launch's tag: the earlier latest is kept as the older one
    const latest = fs.readFileSync(path.join(ck, 'latest'), 'utf8').trim();
    expect(latest).toMatch(/-step-00000004$/);
    expect(latest).not.toBe(before);
    expect(fs.readdirSync(ck).filter((f) => !f.startsWith('.') && f !== 'latest').sort()).toEqual([before, latest].sort());
  }, 150000);

  it('saves a checkpoint per epoch, and --resume continues from the latest', () => {
    const ck = path.join(dir, 'ck');
    const r = launch(['--epochs', '2', '--resume', '--checkpoint-dir', ck, '--svg', path.join(dir, 'resumed.svg')]);
    expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
    expect(r.stdout).toMatch(/\[rank 0\] resumed from .*: epoch 1 done, step 4/);
    expect(r.stdout).not.toMatch(/epoch 1\/2:/);
    expect(r.stdout).toMatch(/\[rank 0\] epoch 2\/2: .*checkpoint saved in/);
    expect(r.stdout).toMatch(/test accuracy [\d.]+% on 200 held-out digits after 2 epochs/);
  }, 150000);
});
