/** `mics plan` and `mics simulate` as users run them: text, JSON, SVG, validation, calibration, errors. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runNode } from '../helpers/run-node';

const mics = (...args: string[]) => runNode(['dist/cli/mics.js', ...args]);

describe('mics plan', () => {
  it('prints the partition size with its reasons, the memory table, the predicted step and the launch', () => {
    const r = mics('plan', '--model', '100b', '--cluster', 'p4d', '--nodes', '64');
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(/^mics plan: gpt-100b \(101\.2B parameters, GPT 80 x 10240, 80 heads\) on 64 x p4d \(512 x A100-SXM4-40GB\)/);
    expect(r.stdout).toMatch(/^partition size S = \d+, \d+ replicas, hierarchical all-gather/m);
    expect(r.stdout).toMatch(/^ {2}model states +[\d.]+ GiB/m);
    expect(r.stdout).toMatch(/^ {2}step time +[\d.]+ s \(compute/m);
    expect(r.stdout).toMatch(/^ {2}TFLOPS per GPU +[\d.]+ executed/m);
    expect(r.stdout).toContain('npx mics-launch --hostfile hosts --master-port 29500 train.js');
    expect(r.stdout).toContain('FI_PROVIDER=efa FI_EFA_USE_DEVICE_RDMA=1');
  });

  it('--attention flash plans without the s x s attention matrices', () => {
    const plan = (attention: string) =>
      JSON.parse(mics('plan', '--model', 'llama-70b', '--cluster', 'p4de', '--nodes', '16', '--seq', '4096', '--attention', attention, '--json').stdout) as {
        microBatch: number; partitionSize: number;
      };
    const unfused = plan('unfused'), flash = plan('flash');
    expect(flash.partitionSize).toBe(unfused.partitionSize);
    expect(flash.microBatch).toBeGreaterThan(unfused.microBatch);
    expect(mics('plan', '--model', '7b', '--attention', 'flash').stdout).toMatch(/recomputation on, attention flash, units per layer/);
  });

  it('--json gives the same plan to scripts', () => {
    const r = mics('plan', '--model', 'llama-70b', '--cluster', 'p4de', '--nodes', '8', '--micro-batch', '1', '--json');
    expect(r.status).toBe(0);
    const plan = JSON.parse(r.stdout) as {
      worldSize: number; partitionSize: number; microBatch: number; candidates: { partitionSize: number; fits: boolean }[];
      prediction: { stepTime: number; memory: { fits: boolean } }; launch: { environment: Record<string, string> };
    };
    expect(plan.worldSize).toBe(64);
    expect(plan.microBatch).toBe(1);
    expect(64 % plan.partitionSize).toBe(0);
    expect(plan.candidates.filter((c) => c.partitionSize < plan.partitionSize).every((c) => !c.fits)).toBe(true);
    expect(plan.prediction.memory.fits).toBe(true);
    expect(plan.prediction.stepTime).toBeGreaterThan(0);
    expect(plan.launch.environment.FI_PROVIDER).toBe('efa');
  });

  it('names the problem: unknown cluster, a model that fits nowhere, bad values', () => {
    const cases: [string[], RegExp][] = [
      [['--model', '100b', '--cluster', 'p9'], /unknown cluster 'p9': use one of p3dn, p4d/],
      [['--model', 'gpt-9'], /unknown model 'gpt-9'/],
      [['--model', '175b', '--cluster', 'p3dn', '--nodes', '1'], /fits at no partition size on 8 V100-SXM2-32GB GPUs/],
      [['--model', '7b', '--nodes', 'two'], /--nodes two is not valid: use an integer >= 1/],
      [['--model', '7b', '--accounting', 'mine'], /--accounting mine is not valid: use engine or paper/],
      [['--model', '7b', '--attention', 'fused'], /--attention fused is not valid: use unfused or flash/],
      [['--model', '7b', '--partition-size', '3', '--nodes', '2'], /partition size 3 does not divide 16 GPUs/],
      [['--model', '7b', '--cluster', 'missing.json'], /--cluster missing\.json cannot be read: ENOENT/],
    ];
    for (const [args, message] of cases) {
      const r = mics('plan', ...args);
      expect([args.join(' '), r.status]).toEqual([args.join(' '), 1]);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('mics plan and mics simulate: inputs beyond the planner\'s limits (docs/scaling.md)', () => {
  it('are named at once, with the limit (they used to run for minutes or abort with the heap exhausted)', () => {
    const cases: [string[], string][] = [
      [['plan', '--model', '1e30b'], "mics: model '1e30b' is 1e+39 parameters: a parameter count must be at least 1e6 and at most 1e15 (1000T), e.g. 13b or 1.3e9"],
      [['plan', '--layers', '1e9', '--hidden', '1e9', '--heads', '1'], 'mics: --layers 1000000000 is not valid: use a positive integer up to 2000'],
      [['plan', '--layers', '40', '--hidden', '1e9', '--heads', '1'], 'mics: --hidden 1000000000 is not valid: use a positive integer up to 1000000'],
      [
        ['plan', '--model', '100b', '--nodes', '1e9'],
        'mics: --nodes 1000000000 is too many: 1000000000 nodes of 8 GPUs are more than 1048576 GPUs ' +
          '(PLAN_LIMITS.gpus = MAX_WORLD_SIZE, 2^20, the largest job mics plans); use at most 131072 p4d nodes',
      ],
      [['plan', '--model', '7b', '--accumulation', '1e300'], 'mics: accumulation steps 1e+300 is not valid: use an integer in [1, 9007199254740991]'],
      [
        ['simulate', '--model', '7b', '--gpus', '8,1e9'],
        'mics: GPU count 1000000000 is too large: use at most 1048576 GPUs (PLAN_LIMITS.gpus = MAX_WORLD_SIZE, 2^20, the largest job mics plans)',
      ],
      [['simulate', '--model', '7b', '--gpus', '1,2,...,8589934592'], 'mics: --gpus lists 34 GPU counts: use at most 32 (PLAN_LIMITS.gpuCounts) in one sweep'],
      [['simulate', '--calibrate', '--nproc', '1000000'], 'mics: --nproc 1000000 is not valid: use an even number from 2 to 256 (local ranks on this machine)'],
    ];
    for (const [args, message] of cases) {
      const r = runNode(['dist/cli/mics.js', ...args], {}, 20000);
      expect([args.join(' '), r.status, r.stderr.trim().split('\n')[0]]).toEqual([args.join(' '), 1, message]);
    }
  });
});

describe('mics simulate', () => {
  it('prints a row per strategy and GPU count, and --gpus a,b,...,z doubles up to z', () => {
    const r = mics('simulate', '--model', 'gpt2-30b', '--cluster', 'p4d', '--gpus', '64,128,...,512', '--strategy', 'mics,zero3');
    expect([r.status, r.stderr]).toEqual([0, '']);
    const rows = r.stdout.split('\n').filter((l) => /^ +(mics|zero3) +\d+/.test(l));
    expect(rows.map((l) => l.trim().split(/ +/).slice(0, 2).join(' '))).toEqual([
      'mics 64', 'mics 128', 'mics 256', 'mics 512', 'zero3 64', 'zero3 128', 'zero3 256', 'zero3 512',
    ]);
    expect(rows[0]).toMatch(/100\.0%/);
  });

  it('--json and --svg give the rows and the curves', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-sim-'));
    try {
      const svg = path.join(dir, 'scaling.svg');
      const r = mics('simulate', '--model', '175b', '--cluster', 'p5', '--gpus', '128,1024,4096', '--strategy', 'mics,zero3,hsdp', '--json', '--svg', svg);
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout) as { rows: { strategy: string; gpus: number; weakScalingEfficiency: number; prediction: { interBytesPerNode: number } }[] };
      expect(out.rows).toHaveLength(9);
      for (const row of out.rows) expect(row.prediction.interBytesPerNode).toBeGreaterThan(0);
      const text = fs.readFileSync(svg, 'utf8');
      expect(text.match(/<polyline /g)).toHaveLength(3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--validate prints every published figure with its prediction, error, average and maximum', () => {
    const r = mics('simulate', '--validate');
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout.match(/^average absolute error [\d.]+%, maximum [\d.]+% \(targets: 10% and 20%\)$/gm)).toHaveLength(2);
    expect(r.stdout).toContain("rule 'planned'");
    expect(r.stdout).toContain("rule 'fastest'");
    expect(r.stdout).toMatch(/^MiCS weak-scaling efficiency, 100B, 128 -> 512 A100 \(p4d\) +99\.4% +[\d.]+% +[\d.]+%$/m);
    const json = JSON.parse(mics('simulate', '--validate', '--rule', 'planned', '--json').stdout) as { points: { source: string }[] }[];
    expect(json).toHaveLength(1);
    expect(json[0].points).toHaveLength(11);
  });

  it('rejects bad lists and metrics by name', () => {
    expect(mics('simulate', '--model', '7b', '--gpus', '16,24,...,64').stderr).toMatch(/--gpus 16,24,...,64 is not valid/);
    expect(mics('simulate', '--model', '7b', '--gpus', '12').stderr).toMatch(/GPU count 12 is not a whole number of p4d nodes/);
    expect(mics('simulate', '--model', '7b', '--strategy', 'fsdp').stderr).toMatch(/--strategy fsdp is not valid: use a comma list of mics, zero3, zero2, hsdp, ddp/);
    expect(mics('simulate', '--validate', '--rule', 'best').stderr).toMatch(/--rule best is not valid/);
  });
});

describe('mics simulate --calibrate', () => {
  it('measures this machine with mics bench into an emulated preset that plans and simulates, and compares step results', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-cal-'));
    try {
      const preset = path.join(dir, 'emulated.json');
      const steps = path.join(dir, 'steps.json');
      // A measured step in the format of mics bench step --json's results (hand-written: no step benchmark runs here).
      fs.writeFileSync(steps, JSON.stringify({
        results: [{ strategy: 'mics', worldSize: 4, ranksPerNode: 2, partitionSize: 2, unitElements: [262144, 262144], gatherBytes: 4, reduceBytes: 4, accumulation: 2, computeSeconds: 0.01, stepSeconds: 0.05 }],
      }));
      const r = runNode(['dist/cli/mics.js', 'simulate', '--calibrate', '--nproc', '4', '--maxbytes', '1M', '--out', preset, '--step-bench', steps], {}, 120000);
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toMatch(/intra-node bandwidth +[\d.]+ MB\/s +median all_gather busbw at 1048576 B of 2 \(4 ranks, 1 node, 1 run; measured\)/);
      expect(r.stdout).toMatch(/inter-node bandwidth +[\d.]+ MB\/s +median all_gather busbw at 1048576 B of 2 \(4 ranks, 2 nodes, 1 run; measured\)/);
      expect(r.stdout).toMatch(/mics W=4 S=2, accumulation 2, compute 0\.02 s: measured 0\.0500 s, predicted [\d.]+ s, error [\d.]+%/);
      expect(r.stdout).toMatch(/^[01] of 1 within 25%; average error [\d.]+%, maximum [\d.]+%$/m);
      const saved = JSON.parse(fs.readFileSync(preset, 'utf8')) as { gpusPerNode: number; intra: { bandwidth: number } };
      expect(saved.gpusPerNode).toBe(2);
      expect(saved.intra.bandwidth).toBeGreaterThan(0);
      const sim = runNode(['dist/cli/mics.js', 'simulate', '--cluster', preset, '--model', '1e8', '--gpus', '2,4', '--strategy', 'mics,ddp']);
      expect([sim.status, sim.stderr]).toEqual([0, '']);
      expect(sim.stdout).toMatch(/^ +mics +4 /m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 150000);

  it('--from-bench takes saved runs, every one-node run of the nodes with them, and sorts them by their headers', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-cal-'));
    try {
      const timing = (timeUs: number, busbw: number) => ({ timeUs, busbw });
      const bench = (nodes: number, ranks: number, rows: [number, number, number][]) => ({
        header: `nranks ${ranks} nodes ${nodes} backend cpu`,
        rows: rows.flatMap(([size, timeUs, busbw]) =>
          ['all_gather', 'reduce_scatter'].map((op) => ({ op, size, outOfPlace: timing(timeUs, busbw), inPlace: timing(timeUs, busbw) }))),
      });
      const files = {
        // One node's run was descheduled: its small op reads a 4 ms time slice.
        node0: bench(1, 4, [[4096, 4000, 0.001], [16777216, 8000, 2]]),
        node1: bench(1, 4, [[4096, 30, 0.1], [16777216, 6000, 3]]),
        nodes: bench(2, 8, [[4096, 700, 0.005], [16777216, 140000, 0.12]]),
      };
      for (const [name, json] of Object.entries(files)) fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(json));
      const list = ['nodes', 'node0', 'node1'].map((n) => path.join(dir, `${n}.json`)).join(',');
      const r = mics('simulate', '--calibrate', '--from-bench', list);
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toMatch(/collective start-up latency +30\.0 us +fastest all_gather of any size \(4096 B; 4 ranks, 1 node, 2 runs; measured\)/);
      expect(r.stdout).toMatch(/inter-node hop latency +670\.0 us/);
      expect(r.stdout).toMatch(/intra-node bandwidth +2500\.0 MB\/s +median all_gather busbw at 16777216 B of 4/);
      fs.writeFileSync(path.join(dir, 'other.json'), JSON.stringify({ header: 'nranks 4 nodes 3', rows: [] }));
      expect(mics('simulate', '--calibrate', '--from-bench', path.join(dir, 'other.json')).stderr).toMatch(/other\.json: not a one-node or two-node run/);
      expect(mics('simulate', '--calibrate', '--from-bench', path.join(dir, 'node0.json')).stderr).toMatch(/give one-node and two-node runs/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
