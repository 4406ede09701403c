/**
 * Several NCCL ranks on ONE GPU (mics-launch --one-gpu: each rank its own NCCL_HOSTID,
 * sockets over loopback): the real unique-id exchange, non-blocking init with real
 * peers, every collective, a grouped call, ncclCommSplit, the MiCS groups and the
 * hierarchical all-gather (4 ranks on 2 emulated nodes), a tensor released during its
 * op, a signature mismatch, an enqueue failure inside an open group, destroy; the
 * engine's training steps on 4 ranks (hierarchical gathers) against the single-process
 * reference; then a rank killed mid-run (the survivors fail, then find the world aborted).
 *
 * Needs the CUDA build, NCCL and a GPU in compute mode Default; elsewhere skipped with
 * the reason printed (fails with MICS_REQUIRE_GPU=1). scripts/gpu-check.sh runs it.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { oneGpuEnvironment } from '../../lib/cli/launch/one-gpu';
import { parseNvidiaSmiQuery } from '../../lib/cuda/preflight';
import { killAllRanks, runRanks } from '../helpers/ranks';
import { gpuTest, ncclStatus } from '../helpers/require-gpu';
import { repoRoot } from '../helpers/run-node';

const script = path.join(repoRoot, 'test', 'fixtures', 'nccl', 'one-gpu.js');
const trainScript = path.join(repoRoot, 'test', 'fixtures', 'engine', 'train.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { train } = require('../fixtures/engine/reference') as {
  train(config: object): { params: Record<string, Float32Array> };
};
const launcher = path.join(repoRoot, 'dist', 'cli', 'mics-launch.js');

function sharedGpuStatus(): { usable: boolean; detail: string } {
  const nccl = ncclStatus();
  if (!nccl.usable) return nccl;
  const smi = spawnSync('nvidia-smi', ['-q'], { encoding: 'utf8', timeout: 20000 });
  const gpu = parseNvidiaSmiQuery(smi.stdout ?? '').gpus[0];
  if (!gpu) return { usable: false, detail: 'nvidia-smi -q lists no GPU' };
  if (gpu.computeMode !== 'Default') {
    return { usable: false, detail: `GPU ${gpu.busId} is in compute mode ${gpu.computeMode ?? '?'}; several ranks on one GPU need Default` };
  }
  return { usable: true, detail: gpu.name ?? gpu.busId };
}

const status = sharedGpuStatus();
const gpuIt = gpuTest(status.usable, status.detail, 'the one-GPU multi-rank NCCL tests');
if (status.usable) console.log(`one-GPU multi-rank NCCL tests on ${status.detail}`);

afterAll(killAllRanks);

interface SmokeResult {
  rank: number;
  size: number;
  transport: string;
  device: number;
  checks: Record<string, boolean>;
  hierarchical: boolean;
  ncclSplit: boolean;
  mismatch?: { code: string; message: string; peer?: number };
  afterMismatch?: string;
  injected?: { code: string; message: string };
  afterInjected?: string;
  fatal?: string;
}

/** Runs the fixture under mics-launch --one-gpu and returns every rank's RESULT. */
function launch(nproc: number, emulateNodes: number): { code: number | null; results: SmokeResult[]; output: string } {
  const r = spawnSync(
    process.execPath,
    [launcher, '--one-gpu', '--standalone', '--nproc-per-node', String(nproc), '--emulate-nodes', String(emulateNodes), script, 'smoke'],
    { cwd: repoRoot, encoding: 'utf8', timeout: 80000, env: { ...process.env, NCCL_DEBUG: process.env.NCCL_DEBUG ?? 'WARN' } },
  );
  const output = `${r.stdout}${r.stderr}`;
  const results = [...r.stdout.matchAll(/^\[rank (\d+)\] RESULT (\{.*\})$/gm)]
    .map((m) => JSON.parse(m[2]) as SmokeResult)
    .sort((a, b) => a.rank - b.rank);
  return { code: r.status, results, output };
}

function expectSmoke(nproc: number, emulateNodes: number): void {
  const { code, results, output } = launch(nproc, emulateNodes);
  expect({ code, ranks: results.length, fatal: results.map((x) => x.fatal).filter(Boolean) }).toEqual({ code: 0, ranks: nproc, fatal: [] });
  for (const r of results) {
    expect({ rank: r.rank, transport: r.transport, device: r.device }).toEqual({ rank: r.rank, transport: 'nccl', device: 0 });
    for (const [name, ok] of Object.entries(r.checks)) expect([r.rank, name, ok]).toEqual([r.rank, name, true]);
    expect(Object.keys(r.checks)).toHaveLength(12);
    expect(r.hierarchical).toBe(emulateNodes > 1);
    // Every rank saw the mismatch, naming both calls; the communicator is aborted after it.
    expect(r.mismatch).toMatchObject({ code: 'MICS_MISMATCH', message: expect.stringMatching(/rank \d+ called allReduce\(count=(16|32), dtype=f32, op=sum\) #0 but rank \d+ called allReduce\(count=(16|32)/) });
    expect(r.afterMismatch).toBe('MICS_ABORTED');
    // NCCL refused the enqueue inside the group; the group was ended, the communicator aborted.
    expect(r.injected).toMatchObject({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(/ncclAllReduce failed in group '.*': .*ncclResult 4/) });
    expect(r.afterInjected).toBe('MICS_ABORTED');
  }
  console.log(`${nproc} ranks on one GPU (${emulateNodes} node(s)): ncclCommSplit ${results[0].ncclSplit ? 'used' : 'not available'}; ` +
    `injected failure: ${results[0].injected?.message ?? '-'}\n${output.split('\n').filter((l) => /NCCL WARN/.test(l)).slice(0, 5).join('\n')}`);
}

describe('NCCL ranks sharing one GPU', () => {
  gpuIt('2 ranks under mics-launch --one-gpu: collectives, groups, split, release during an op, mismatch, injected failure', () => {
    expectSmoke(2, 1);
  }, 90000);

  gpuIt('4 ranks on 2 emulated nodes: the same, with the hierarchical all-gather', () => {
    expectSmoke(4, 2);
  }, 90000);

  gpuIt("the engine's steps on 4 ranks (S = 4 over 2 nodes) train like the single-process reference (1e-6)", async () => {
    const config = {
      backend: 'nccl', S: 4, A: 2, B: 4, steps: 8, seed: 11, clip: 0.05, noDecay: ['fc2.bias'],
      optimizer: { type: 'adamw', lr: 0.02, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.05 },
    };
    const results = await runRanks({
      n: 4,
      nodes: 2,
      script: trainScript,
      args: [JSON.stringify(config)],
      timeoutMs: 80000,
      rankEnv: (rank) => oneGpuEnvironment(rank, 0, `engine${process.pid}`),
    });
    for (const r of results) expect([r.rank, r.code, r.json?.error, r.json?.fatal]).toEqual([r.rank, 0, undefined, undefined]);
    const reference = train({ W: 4, ...config });
    for (const [name, ref] of Object.entries(reference.params)) {
      const got = results[0].json.params[name] as number[];
      let delta = 0;
      let scale = 0;
      ref.forEach((v, i) => {
        delta = Math.max(delta, Math.abs(got[i] - v));
        scale = Math.max(scale, Math.abs(v));
      });
      expect([name, delta / scale <= 1e-6, delta / scale]).toEqual([name, true, delta / scale]);
    }
  }, 90000);

  gpuIt('a rank killed mid-run: every survivor fails (peer lost, aborted or timeout) and finds the world aborted', async () => {
    const results = await runRanks({
      n: 3,
      script,
      args: ['kill'],
      timeoutMs: 60000,
      rankEnv: (rank) => oneGpuEnvironment(rank, 0, `kill${process.pid}`),
    });
    expect(results[1].signal).toBe('SIGKILL');
    for (const r of [results[0], results[2]]) {
      expect({ rank: r.rank, code: r.code, failedAt: typeof r.json?.failedAt }).toEqual({ rank: r.rank, code: 0, failedAt: 'number' });
      expect(['MICS_PEER_LOST', 'MICS_ABORTED', 'MICS_TIMEOUT', 'MICS_SYSTEM']).toContain(r.json.error.code);
      expect(r.json.next).toBe('MICS_ABORTED');
      console.log(`rank ${r.rank}: ${r.json.error.code} after ${r.json.ms} ms: ${r.json.error.message}`);
    }
  }, 90000);
});
