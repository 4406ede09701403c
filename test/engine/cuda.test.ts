/**
 * The engine on DeviceTensors (nccl backend, one rank): the same 20-step training run
 * as test/engine/training.test.ts, against the same single-process reference. Needs
 * the CMake build with CUDA, a device and NCCL; elsewhere skipped with the reason
 * printed (scripts/gpu-check.sh runs it on a GPU machine).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { gpuTest } from '../helpers/require-gpu';
import { repoRoot } from '../helpers/run-node';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { train } = require('../fixtures/engine/reference') as {
  train(config: object): { params: Record<string, Float32Array>; norms: number[] };
};

const probe = spawnSync(
  process.execPath,
  ['-e', "const {backendStatuses}=require('./dist/cli/info'); const {loadAddon}=require('./dist/core/native'); console.log(JSON.stringify(backendStatuses(loadAddon().addon.capabilities()).find(b=>b.name==='nccl')))"],
  { cwd: repoRoot, encoding: 'utf8' },
);
const nccl = JSON.parse(probe.stdout || '{"usable":false,"detail":"probe failed"}') as { usable: boolean; detail: string };
const gpuIt = gpuTest(nccl.usable, nccl.detail, "the engine's GPU test"); // fails under MICS_REQUIRE_GPU=1

describe('the engine on DeviceTensors (nccl, one rank)', () => {
  gpuIt('trains 20 AdamW steps with accumulation and clipping like the single-process reference (1e-6)', () => {
    const config = {
      backend: 'nccl',
      S: 1,
      A: 3,
      B: 4,
      steps: 20,
      seed: 7,
      optimizer: { type: 'adamw', lr: 0.02, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.05 },
      clip: 0.05,
      noDecay: ['fc2.bias'],
    };
    const result = spawnSync(process.execPath, [path.join(repoRoot, 'test', 'fixtures', 'engine', 'train.js'), JSON.stringify(config)], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 120000,
      env: { ...process.env, RANK: '0', WORLD_SIZE: '1', LOCAL_RANK: '0' },
    });
    const line = result.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    const out = JSON.parse(line?.slice(7) ?? '{}') as { params?: Record<string, number[]>; error?: unknown; fatal?: unknown };
    expect([out.error, out.fatal, result.stderr]).toEqual([undefined, undefined, expect.any(String)]);
    const reference = train({ W: 1, ...config });
    for (const [name, ref] of Object.entries(reference.params)) {
      let delta = 0;
      let scale = 0;
      ref.forEach((r, i) => {
        delta = Math.max(delta, Math.abs(out.params![name][i] - r));
        scale = Math.max(scale, Math.abs(r));
      });
      expect([name, delta / scale <= 1e-6]).toEqual([name, true]);
    }
  }, 150000);
});
