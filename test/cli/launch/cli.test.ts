/** The launcher binary's own surface: --dry-run, usage errors, --help. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { requireBuilt, runLaunch, tempDir, worker } from './harness';

beforeAll(requireBuilt);

describe('mics-launch --dry-run', () => {
  it('shows the command and every rank environment, starts nothing, and redacts the token', async () => {
    const dir = tempDir('dry');
    const r = await runLaunch(['--dry-run', '--nproc-per-node', '4', '--emulate-nodes', '2', '--master-port', '6123', worker, 'x'], {
      FIX_PID_DIR: dir,
      MICS_STORE_TOKEN: 'b'.repeat(64),
      OMP_NUM_THREADS: '',
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^node 0 of 1 on .*: 4 rank\(s\) in 2 emulated nodes of 2$/m);
    expect(r.stdout).toMatch(/^store: hosted here, listening on 127\.0\.0\.1:6123$/m);
    expect(r.stdout).toContain(`command: ${process.execPath} ${worker} x`);
    const ranks = r.stdout.split('\n').filter((l) => l.startsWith('rank '));
    expect(ranks).toHaveLength(4);
    expect(ranks[3]).toMatch(/^rank 3: RANK=3 LOCAL_RANK=1 WORLD_SIZE=4 LOCAL_WORLD_SIZE=2 GROUP_RANK=1 GROUP_WORLD_SIZE=2 /);
    for (const line of ranks) {
      expect(line).toContain('MICS_STORE_TOKEN=<redacted>');
      expect(line).toContain('MICS_STORE_HOSTED=1');
      expect(line).toContain('OMP_NUM_THREADS=1');
    }
    expect(r.stdout + r.stderr).not.toMatch(/b{64}|[0-9a-f]{64}/);
    expect(fs.readdirSync(dir)).toEqual([]); // no rank ran
  });

  it('says the port is chosen at start with --standalone', async () => {
    const r = await runLaunch(['--dry-run', '--standalone', '--nproc-per-node', '1', worker]);
    expect(r.stdout).toMatch(/MASTER_PORT=<free port chosen at start>/);
  });
});

describe('--nproc-per-node auto|gpu|cpu', () => {
  /** A stand-in nvidia-smi on PATH that lists two GPUs. */
  function fakeGpuPath(): string {
    const dir = tempDir('smi');
    const smi = path.join(dir, 'nvidia-smi');
    fs.writeFileSync(smi, '#!/bin/sh\necho "GPU 0: NVIDIA H100 (UUID: GPU-0)"\necho "GPU 1: NVIDIA H100 (UUID: GPU-1)"\n');
    fs.chmodSync(smi, 0o755);
    return `${dir}${path.delimiter}${process.env.PATH ?? ''}`;
  }

  it('auto counts the GPUs nvidia-smi lists, narrowed by CUDA_VISIBLE_DEVICES; cpu counts cores', async () => {
    const PATH = fakeGpuPath();
    const auto = await runLaunch(['--dry-run', worker], { PATH, CUDA_VISIBLE_DEVICES: undefined });
    expect(auto.stdout).toMatch(/^node 0 of 1 on .*: 2 rank\(s\)$/m);
    const narrowed = await runLaunch(['--dry-run', '--nproc-per-node', 'gpu', worker], { PATH, CUDA_VISIBLE_DEVICES: '1' });
    expect(narrowed.stdout).toMatch(/: 1 rank\(s\)$/m);
    // The rank's device binding is left to LOCAL_RANK: CUDA_VISIBLE_DEVICES is passed through untouched.
    expect(narrowed.stdout).not.toMatch(/^rank 0: .*CUDA_VISIBLE_DEVICES/m);
    const cpu = await runLaunch(['--dry-run', '--nproc-per-node', 'cpu', worker], { PATH });
    expect(cpu.stdout).toMatch(new RegExp(`: ${os.availableParallelism()} rank\\(s\\)`));
  });

  it('gpu without any GPU is a usage error', async () => {
    const r = await runLaunch(['--dry-run', '--nproc-per-node', 'gpu', worker], { PATH: path.dirname(process.execPath) });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--nproc-per-node gpu: no GPU found');
  });
});

describe('usage errors', () => {
  it.each([
    [['--nproc-per-node', 'lots', worker], "invalid --nproc-per-node 'lots': expected a positive integer, 'auto', 'gpu' or 'cpu'"],
    [['--node-rank', '3', '--nnodes', '2', worker], "invalid --node-rank '3': expected 0..1 (--nnodes is 2)"],
    [['--nproc-per-node', '1', 'no-such-script.js'], "script 'no-such-script.js' not found"],
    [['--frobnicate', worker], "unknown option '--frobnicate'"],
  ])('%j exits 2 with a message naming the value', async (args, message) => {
    const r = await runLaunch(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mics-launch: error: ${message}`);
    expect(r.stderr).toContain("run 'mics-launch --help' for the options");
  });

  it('a port already in use is a launch error that suggests a fix', async () => {
    const net = await import('node:net');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = String((server.address() as { port: number }).port);
    try {
      const r = await runLaunch(['--nproc-per-node', '1', '--master-port', port, worker]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`port ${port} is in use (another job?); choose another --master-port, or --standalone for a free one`);
    } finally {
      server.close();
    }
  });

  it('--help lists the options and --version prints the version, both exiting 0', async () => {
    const r = await runLaunch(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: mics-launch \[options\] <script.js\|script.ts\|executable> \[args...\]/);
    expect(r.stdout).toContain('--emulate-nodes <n>');
    const v = await runLaunch(['--version']);
    expect([v.code, v.stdout.trim()]).toEqual([0, (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version]);
  });
});
