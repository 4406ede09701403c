/**
 * The engine trains exactly like one process would: real rank processes run 20
 * optimizer steps of a small real model (test/fixtures/engine/model.js) and the
 * final parameters match an independent single-process reference
 * (test/fixtures/engine/reference.js) to max|delta| / max|reference| <= 1e-6 per
 * parameter, for DDP (S=1), ZeRO-3 (S=W), MiCS in between, hierarchical MiCS on 2
 * emulated nodes, with and without accumulation and clipping, AdamW and SGD.
 * The full cross product is in scripts/engine-matrix.sh; each dimension is here.
 */
import * as path from 'node:path';
import { describeRanks, killAllRanks, repoRoot, runRanks, type RankResult } from '../helpers/ranks';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { train } = require('../fixtures/engine/reference') as {
  train(config: object): { params: Record<string, Float32Array>; norms: number[] };
};

const script = path.join(repoRoot, 'test', 'fixtures', 'engine', 'train.js');
afterAll(killAllRanks);

interface RunConfig {
  W: number;
  nodes?: number;
  S: number;
  A: number;
  B?: number;
  steps?: number;
  seed?: number;
  optimizer: object;
  noDecay?: string[];
  clip?: number;
  schedule?: object;
  style?: 'layers' | 'all';
  units?: object;
  init?: 'weights' | 'rank0' | 'seed';
  perturbRank?: number;
  killRank?: number;
  killStep?: number;
}

const adamw = { type: 'adamw', lr: 0.02, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.05 };
const sgd = { type: 'sgd', lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0.01 };
const cosine = { warmupSteps: 3, decay: 'cosine', totalSteps: 20, minFactor: 0.1 };

async function run(config: RunConfig, timeoutMs = 120000): Promise<RankResult[]> {
  const full = { B: 4, steps: 20, seed: 7, ...config };
  return runRanks({ n: config.W, nodes: config.nodes, script, args: [JSON.stringify(full)], timeoutMs });
}

/** max|delta| / max|reference| per parameter. */
function relativeErrors(got: Record<string, number[]>, want: Record<string, Float32Array>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ref] of Object.entries(want)) {
    const values = got[name];
    let delta = 0;
    let scale = 0;
    ref.forEach((r, i) => {
      delta = Math.max(delta, Math.abs(values[i] - r));
      scale = Math.max(scale, Math.abs(r));
    });
    out[name] = delta / scale;
  }
  return out;
}

function expectAllOk(results: RankResult[]): void {
  const context = describeRanks(results);
  for (const r of results) {
    expect([context, r.code, r.json?.fatal, r.json?.error, r.json?.createError]).toEqual([context, 0, undefined, undefined, undefined]);
  }
}

function expectMatchesReference(results: RankResult[], config: RunConfig): void {
  expectAllOk(results);
  const reference = train({ B: 4, steps: 20, seed: 7, ...config });
  const errors = relativeErrors(results[0].json.params, reference.params);
  for (const [name, e] of Object.entries(errors)) expect([name, e <= 1e-6, e]).toEqual([name, true, e]);
  // The norms the engine reports are the reference's norms of the mean gradient.
  const norms = (results[0].json.steps as { gradNorm: number }[]).map((s) => s.gradNorm);
  expect(norms.length).toBe(20);
  norms.forEach((n, i) => expect(Math.abs(n - reference.norms[i]) / reference.norms[i]).toBeLessThan(1e-5));
}

describe('the engine trains like a single process (20 steps, max|delta|/max|ref| <= 1e-6 per parameter)', () => {
  const cases: [string, RunConfig][] = [
    ['W=1 (S=1): one process, AdamW', { W: 1, S: 1, A: 1, optimizer: adamw }],
    ['W=2 DDP (S=1), accumulation 3, SGD with Nesterov momentum, clipping', { W: 2, S: 1, A: 3, optimizer: sgd, clip: 0.05 }],
    ['W=2 ZeRO-3 (S=W), AdamW, clipping, no decay on biases', { W: 2, S: 2, A: 1, optimizer: adamw, clip: 0.05, noDecay: ['fc1.bias', 'fc2.bias'] }],
    [
      'W=4 MiCS (S=2), accumulation 3, AdamW, clipping, warmup + cosine schedule',
      { W: 4, S: 2, A: 3, optimizer: adamw, clip: 0.05, schedule: cosine, noDecay: ['fc2.bias'] },
    ],
    ['W=4 ZeRO-3 (S=4), SGD, gatherAll style with automatic units', { W: 4, S: 4, A: 1, optimizer: sgd, style: 'all', units: { maxElements: 20 } }],
    [
      'W=8 as 2 emulated nodes, hierarchical MiCS (S=8 spans both nodes), accumulation 3, AdamW, clipping',
      { W: 8, nodes: 2, S: 8, A: 3, optimizer: adamw, clip: 0.05 },
    ],
    ['W=8 as 2 emulated nodes, MiCS with S=4 (one node per partition group), SGD', { W: 8, nodes: 2, S: 4, A: 1, optimizer: sgd, clip: 0.05 }],
  ];
  it.each(cases)('%s', async (_name, config) => {
    const results = await run(config);
    expectMatchesReference(results, config);
    if (config.S === 8) {
      for (const r of results) expect(r.json.layout.units).toBe(2);
    }
  }, 180000);
});

describe('the same run at every partition size', () => {
  it('W=4, S in {1, 2, 4}, seeded init by the engine: the same parameters, and model-state bytes halve when S doubles', async () => {
    const finals: Record<string, number[]>[] = [];
    const modelStates: number[] = [];
    for (const S of [1, 2, 4]) {
      const results = await run({ W: 4, S, A: 2, optimizer: adamw, clip: 0.05, init: 'seed', steps: 5 } as RunConfig);
      expectAllOk(results);
      finals.push(results[0].json.params);
      modelStates.push(results[0].json.memory.modelStates);
      for (const r of results) {
        // fp32 AdamW: parameter shard, gradient accumulator, exp_avg, exp_avg_sq = 16 bytes per element of the shard space
        expect(r.json.memory.modelStates).toBe((16 * r.json.layout.paddedNumel) / S);
        expect(r.json.memory.parameterShards).toBe(4 * r.json.layout.shardNumel);
      }
    }
    for (const final of finals.slice(1)) {
      const ref = Object.fromEntries(Object.entries(finals[0]).map(([k, v]) => [k, Float32Array.from(v)]));
      for (const [name, e] of Object.entries(relativeErrors(final, ref))) expect([name, e <= 1e-6]).toEqual([name, true]);
    }
    // 16 P / S up to the padding (less than 16 elements per unit per rank, 16 bytes each):
    // the model-state bytes per rank halve when S doubles (exactly so for models whose
    // units are multiples of S x 16 elements: test/engine/layout.test.ts).
    const P = 35 + 18;
    [1, 2, 4].forEach((S, i) => {
      expect(modelStates[i]).toBeGreaterThanOrEqual((16 * P) / S);
      expect(modelStates[i]).toBeLessThan((16 * P) / S + 16 * 16 * 2);
    });
  }, 180000);

  it('weights given on rank 0 only ({from: "rank0"}) train the same as weights given everywhere', async () => {
    const config: RunConfig = { W: 4, S: 2, A: 1, optimizer: adamw, init: 'rank0' };
    expectMatchesReference(await run(config), config);
  }, 120000);
});

describe('failures', () => {
  it('replicas that start different: createEngine rejects on every rank with MICS_MISMATCH naming the ranks', async () => {
    const results = await run({ W: 4, S: 2, A: 1, optimizer: adamw, perturbRank: 2, steps: 1 });
    const context = describeRanks(results);
    for (const r of results) {
      const err = r.json?.createError;
      expect([context, r.rank, err?.code, err?.micsError]).toEqual([context, r.rank, 'MICS_MISMATCH', true]);
      // slice 0 is held by world ranks 0 and 2; rank 2 was given other weights
      expect(err.message).toContain('[0] vs [2]');
    }
  }, 60000);

  it('a rank killed mid-step (W=4, S=2: two partition groups): every survivor rejects within 10 s naming world rank 1', async () => {
    const results = await run({ W: 4, S: 2, A: 2, optimizer: adamw, killRank: 1, killStep: 3, steps: 6, timeoutMs: 60000 } as RunConfig, 90000);
    const context = describeRanks(results);
    const victim = results.find((r) => r.rank === 1)!;
    expect([context, victim.signal]).toEqual([context, 'SIGKILL']);
    const killedAt = Number(/KILLED (\d+)/.exec(victim.stdout)?.[1]);
    expect(killedAt).toBeGreaterThan(0);
    for (const r of results.filter((x) => x.rank !== 1)) {
      const err = r.json?.error;
      expect([context, r.rank, err?.code]).toEqual([context, r.rank, expect.stringMatching(/^MICS_(PEER_LOST|ABORTED)$/)]);
      expect([context, r.rank, err.message]).toEqual([context, r.rank, expect.stringContaining('world rank 1')]);
      expect([context, r.rank, err.at - killedAt < 10000]).toEqual([context, r.rank, true]);
    }
  }, 120000);
});
