/**
 * Checkpoints with real rank processes (test/fixtures/engine/train.js): a run at
 * (W=4, S=4) saves at steps 3 and 6; loading its step-3 checkpoint at another layout
 * gives exactly the saved parameters and optimizer states (saved again right after
 * the load: the same bits), and training on to step 6 ends where the uninterrupted
 * run ended: bit for bit at the same layout, within the engine's fp32 tolerance
 * (1e-6 relative) at another. The global batch is the same at every W (W x B = 16).
 * Also: a job of 8 ranks that loses one node's ranks resumes as 4 ranks; training
 * goes on while a background save writes; a directory that is not shared is named;
 * exported safetensors read back with a reader written here from the format's
 * description, and imported at another S.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exportCheckpoint, hostKernels } from '../../lib';
import { killAllRanks, type RankResult } from '../helpers/ranks';
import {
  expectAllOk,
  expectBitIdentical,
  readStates,
  relativeErrors,
  removeTemporaryDirectories,
  temporaryDirectory,
  trainRun,
  type TrainConfig,
} from '../helpers/checkpoints';

afterAll(() => {
  killAllRanks();
  removeTemporaryDirectories();
});

const base = {
  A: 2,
  steps: 6,
  seed: 7,
  optimizer: { type: 'adamw', lr: 0.02, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.05 },
  clip: 0.05,
  schedule: { warmupSteps: 2, decay: 'cosine', totalSteps: 6, minFactor: 0.1 },
  extra: 3000,
};
const STEP3 = 'step-00000003';
const STEP6 = 'step-00000006';
type States = Record<string, Record<string, Float32Array>>;

let uninterrupted: RankResult[];
let savedDir: string;
let states3: States;
let states6: States;

beforeAll(async () => {
  savedDir = temporaryDirectory();
  uninterrupted = await trainRun({ W: 4, S: 4, B: 4, ...base, checkpoint: { dir: savedDir, saveAt: [3, 6] } });
  expectAllOk(uninterrupted);
  states3 = await readStates(savedDir, STEP3);
  states6 = await readStates(savedDir, STEP6);
}, 120000);

function expectWithin(got: States, want: States, tolerance: number): void {
  for (const [name, e] of Object.entries(relativeErrors(got, want))) expect([name, e <= tolerance, e]).toEqual([name, true, e]);
}

describe('round trip: saved at (W=4, S=4), loaded at any (W, S)', () => {
  it('the checkpoint holds what the run saved: layout, step, schedule, user state, one file per slice', async () => {
    const index = JSON.parse(fs.readFileSync(path.join(savedDir, STEP3, 'index.json'), 'utf8'));
    expect(fs.readFileSync(path.join(savedDir, 'latest'), 'utf8')).toBe(`${STEP6}\n`);
    expect(index).toMatchObject({ format: 'mics-checkpoint', formatVersion: 1, step: 3, precision: 'fp32', userState: { nextStep: 3 } });
    expect(index.layout).toMatchObject({ worldSize: 4, partitionSize: 4, replicationSize: 1 });
    expect(index.schedule).toEqual({ warmupSteps: 2, decay: 'cosine', totalSteps: 6, minFactor: 0.1 });
    expect(index.states).toEqual(['master', 'exp_avg', 'exp_avg_sq']);
    expect(index.files.map((f: { name: string }) => f.name)).toEqual([0, 1, 2, 3].map((p) => `shard-0000${p}-of-00004.safetensors`));
    expect(index.parameters.map((p: { name: string; shape: number[] }) => [p.name, p.shape])).toEqual([
      ['fc1.weight', [5, 6]],
      ['fc1.bias', [5]],
      ['fc2.weight', [3, 5]],
      ['fc2.bias', [3]],
      ['extra.weight', [3000]],
    ]);
    // The saved master weights are the run's parameters at its end (step 6).
    const final = uninterrupted[0].json.params as Record<string, number[]>;
    for (const [name, values] of Object.entries(final)) expect(Array.from(states6.master[name])).toEqual(values);
  });

  it('same layout: the loaded states are the saved ones bit for bit, and training continues bit for bit', async () => {
    const resaved = temporaryDirectory();
    const later = temporaryDirectory();
    const results = await trainRun({ W: 4, S: 4, B: 4, ...base, resume: { dir: savedDir, tag: STEP3 }, resave: { dir: resaved }, checkpoint: { dir: later, saveAt: [6] } });
    expectAllOk(results);
    expect(results[0].json.loaded).toMatchObject({ tag: STEP3, step: 3, userState: { nextStep: 3 }, resharded: false, saved: { worldSize: 4, partitionSize: 4 } });
    expectBitIdentical(await readStates(resaved, STEP3), states3);
    expectBitIdentical(await readStates(later, STEP6), states6);
    expect(results[0].json.digest).toEqual(uninterrupted[0].json.digest);
  }, 120000);

  const layouts: [string, Partial<TrainConfig>][] = [
    ['W=2, S=2', { W: 2, S: 2, B: 8 }],
    ['W=4, S=1 (DDP)', { W: 4, S: 1, B: 4 }],
    ['W=8, S=4 on 2 emulated nodes', { W: 8, nodes: 2, S: 4, B: 2 }],
  ];
  it.each(layouts)('%s: the loaded states are the saved ones bit for bit; training ends within 1e-6 of the uninterrupted run', async (_name, layout) => {
    const resaved = temporaryDirectory();
    const later = temporaryDirectory();
    const results = await trainRun({ ...base, ...layout, resume: { dir: savedDir, tag: STEP3 }, resave: { dir: resaved }, checkpoint: { dir: later, saveAt: [6] } } as TrainConfig);
    expectAllOk(results);
    // Resharded when the slices change (S); at S=4 again only the replicas are new.
    for (const r of results) expect(r.json.loaded).toMatchObject({ tag: STEP3, step: 3, resharded: layout.S !== 4, saved: { worldSize: 4, partitionSize: 4 } });
    const again = await readStates(resaved, STEP3);
    expectBitIdentical(again, states3);
    expect(JSON.parse(fs.readFileSync(path.join(resaved, STEP3, 'index.json'), 'utf8')).layout).toMatchObject({ worldSize: layout.W, partitionSize: layout.S });
    expectWithin(await readStates(later, STEP6), states6, 1e-6);
  }, 120000);
});

describe('elastic resume', () => {
  it('8 ranks on 2 nodes lose node 1; relaunched as 4 ranks from the latest checkpoint, they train like a 4-rank run loaded from it', async () => {
    const dir = temporaryDirectory();
    const failed = await trainRun({ W: 8, nodes: 2, S: 4, B: 2, ...base, checkpoint: { dir, saveAt: [2, 4] }, killRanks: [4, 5, 6, 7], killStep: 4 });
    for (const r of failed.slice(4)) expect([r.rank, r.signal]).toEqual([r.rank, 'SIGKILL']);
    for (const r of failed.slice(0, 4)) expect([r.rank, r.json?.error?.micsError, typeof r.json?.error?.message]).toEqual([r.rank, true, 'string']);
    expect(fs.readFileSync(path.join(dir, 'latest'), 'utf8')).toBe('step-00000004\n');

    const relaunched = await trainRun({ W: 4, S: 4, B: 4, ...base, resume: { dir } });
    expectAllOk(relaunched);
    expect(relaunched[0].json.loaded).toMatchObject({ tag: 'step-00000004', step: 4, userState: { nextStep: 4 }, saved: { worldSize: 8, partitionSize: 4, nodes: 2 } });
    const clean = await trainRun({ W: 4, S: 4, B: 4, ...base, resume: { dir, tag: 'step-00000004' } });
    expectAllOk(clean);
    expect(relaunched[0].json.digest).toEqual(clean[0].json.digest);
    // The same global batches as the uninterrupted 4-rank run: the same training, up to rounding.
    const got = { master: Object.fromEntries(Object.entries(relaunched[0].json.params as Record<string, number[]>).map(([k, v]) => [k, Float32Array.from(v)])) };
    const want = { master: Object.fromEntries(Object.entries(states6.master).filter(([k]) => k !== 'extra.weight')) };
    expectWithin(got, want, 1e-6);
  }, 180000);
});

describe('saving while training goes on', () => {
  it('beginSave resolves once the state is copied; the next steps run while the files are written, and the checkpoint holds the state of its step', async () => {
    const dir = temporaryDirectory();
    const results = await trainRun({ W: 4, S: 4, B: 4, ...base, checkpoint: { dir, saveAt: [3, 6], background: true } });
    expectAllOk(results);
    expect(results[0].json.saves.map((s: { tag: string }) => s.tag)).toEqual([STEP3, STEP6]);
    expectBitIdentical(await readStates(dir, STEP3), states3);
    expectBitIdentical(await readStates(dir, STEP6), states6);
    expect(results[0].json.digest).toEqual(uninterrupted[0].json.digest);
  }, 120000);
});

describe('a checkpoint directory must be one file system for every writer', () => {
  it('ranks that see different directories fail on every rank, naming the directory and the ranks; nothing is committed', async () => {
    const dir = temporaryDirectory();
    const results = await trainRun({ W: 2, S: 2, B: 8, ...base, steps: 1, checkpoint: { dir, saveAt: [1], perRankDir: true } });
    for (const r of results) {
      expect(r.code).toBe(0);
      expect(r.json.error).toMatchObject({ micsError: true, code: 'MICS_INVALID_ARGUMENT' });
      expect(r.json.error.message).toMatch(/is not shared: world rank 1 \(node 0\) does not see .*which world rank 0 .* created there/);
    }
    expect(fs.readdirSync(path.join(dir, 'rank0'))).toEqual([]);
  }, 60000);
});

/** A safetensors reader written from the format's description, sharing no code with the package. */
function readSafetensors(file: string): { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; bytes: Buffer }> } {
  const data = fs.readFileSync(file);
  const n = Number(data.readBigUInt64LE(0));
  expect((8 + n) % 8).toBe(0); // the header is padded so the data is 8-aligned
  const header = JSON.parse(data.subarray(8, 8 + n).toString('utf8'));
  const { __metadata__: metadata = {}, ...entries } = header;
  const tensors: Record<string, { dtype: string; shape: number[]; bytes: Buffer }> = {};
  let end = 0;
  for (const [name, t] of Object.entries(entries as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>)) {
    tensors[name] = { dtype: t.dtype, shape: t.shape, bytes: data.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) };
    end = Math.max(end, t.data_offsets[1]);
  }
  expect(data.length).toBe(8 + n + end);
  return { metadata, tensors };
}

/** f32 -> bf16 bits, round to nearest even (NaN aside), written here independently. */
function bf16(value: number): number {
  const bits = new Uint32Array(Float32Array.of(value).buffer)[0];
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

describe('export and import of consolidated weights', () => {
  const shapes: Record<string, number[]> = { 'fc1.weight': [5, 6], 'fc1.bias': [5], 'fc2.weight': [3, 5], 'fc2.bias': [3], 'extra.weight': [3000] };

  it('exports model.safetensors (fp32, by name, with shapes) that an independent reader reads back; an engine at another S imports it exactly', async () => {
    const out = temporaryDirectory();
    const result = await exportCheckpoint(savedDir, out);
    expect(result.files).toEqual(['model.safetensors']);
    const { metadata, tensors } = readSafetensors(path.join(out, 'model.safetensors'));
    expect(metadata).toMatchObject({ format: 'pt', 'mics.checkpoint': STEP6, 'mics.step': '6' });
    expect(Object.keys(tensors)).toEqual(Object.keys(shapes));
    for (const [name, t] of Object.entries(tensors)) {
      expect([name, t.dtype, t.shape]).toEqual([name, 'F32', shapes[name]]);
      const want = states6.master[name];
      expect(t.bytes.equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(true);
    }

    // A fresh engine at W=2, S=2 (saved at S=4) imports it, and exports its own weights again.
    const again = temporaryDirectory();
    const results = await trainRun({ W: 2, S: 2, B: 8, ...base, steps: 0, init: 'seed', import: out, exportWeights: { dir: again } });
    expectAllOk(results);
    for (const [name, values] of Object.entries(results[0].json.params as Record<string, number[]>)) expect([name, values]).toEqual([name, Array.from(states6.master[name])]);
    expect(results[0].json.digest['extra.weight']).toBe(await hostKernels.checksum(states6.master['extra.weight']));
    const reexported = readSafetensors(path.join(again, 'model.safetensors')).tensors;
    for (const [name, t] of Object.entries(tensors)) expect([name, reexported[name].bytes.equals(t.bytes)]).toEqual([name, true]);
  }, 60000);

  it('exports bf16 in model-0000k-of-0000n files with model.safetensors.index.json above maxShardBytes', async () => {
    const out = temporaryDirectory();
    const result = await exportCheckpoint(savedDir, out, { dtype: 'bf16', maxShardBytes: 4000 });
    // extra.weight (6000 bytes in bf16) is larger than a shard: a file of its own.
    expect(result.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    const totalElements = Object.values(shapes).reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);
    expect(index.metadata.total_size).toBe(2 * totalElements);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(shapes));
    for (const [name, file] of Object.entries(index.weight_map as Record<string, string>)) {
      const t = readSafetensors(path.join(out, file)).tensors[name];
      expect([name, t.dtype, t.shape]).toEqual([name, 'BF16', shapes[name]]);
      const want = Buffer.from(Uint16Array.from(states6.master[name], bf16).buffer);
      expect([name, t.bytes.equals(want)]).toEqual([name, true]);
    }
  });
});
