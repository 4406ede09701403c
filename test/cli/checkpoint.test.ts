/**
 * `mics checkpoint inspect | verify | export` as a user runs them (the built CLI in
 * a child process), on a checkpoint an engine saved in this process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createEngine, createGroups, init, type Communicator } from '../../lib';
import { parseByteSize } from '../../lib/cli/checkpoint';
import { removeTemporaryDirectories, temporaryDirectory } from '../helpers/checkpoints';
import { repoRoot, runNode } from '../helpers/run-node';

const cli = path.join(repoRoot, 'dist', 'cli', 'mics.js');
let world: Communicator;
let dir: string;

beforeAll(async () => {
  world = await init({ backend: 'cpu', env: { RANK: '0', WORLD_SIZE: '1' } });
  const groups = await createGroups(world, { partitionSize: 1 });
  const engine = await createEngine(groups, {
    parameters: [
      { name: 'embed.weight', shape: [10, 4] },
      { name: 'head.bias', shape: [10] },
    ],
    optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 },
    schedule: { warmupSteps: 10 },
    init: { seed: 3 },
  });
  dir = temporaryDirectory();
  await engine.save(dir, { tag: 'first', userState: { sample: 0 } });
  await engine.save(dir, { tag: 'second', userState: { sample: 128 } });
});
afterAll(() => {
  world.destroy();
  removeTemporaryDirectories();
});

describe('mics checkpoint', () => {
  it('inspect prints the step, layout, optimizer, schedule, user state and every file with its size and checksum', () => {
    const r = runNode([cli, 'checkpoint', 'inspect', dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^checkpoint second at ${dir}/second \\(latest\\)\\n`));
    expect(r.stdout).toMatch(/step +0\n/);
    expect(r.stdout).toMatch(/layout +W=1 S=1 R=1 G=1 nodes=1, alignment 16, 1 units/);
    expect(r.stdout).toMatch(/states master F32, momentum F32/);
    expect(r.stdout).toMatch(/optimizer +sgd lr=0.1 momentum=0.9/);
    expect(r.stdout).toMatch(/schedule +\{"warmupSteps":10,"decay":"constant","totalSteps":0,"minFactor":0\}/);
    expect(r.stdout).toMatch(/user state +\{"sample":128\}/);
    expect(r.stdout).toMatch(/parameters +2 \(50 elements\)/);
    expect(r.stdout).toMatch(/ {2}shard-00000-of-00001.safetensors +\d+ bytes {2}xxh64 [0-9a-f]{16} {2}slice 0, written by world rank 0/);
    expect(r.stdout).toMatch(/others here +first \(step 0\)/);
    const json = JSON.parse(runNode([cli, 'checkpoint', 'inspect', dir, '--tag', 'first', '--json']).stdout);
    expect(json).toMatchObject({ tag: 'first', latest: 'second', index: { userState: { sample: 0 } } });
  });

  it('verify reads every byte: exit 0 when intact, 1 naming the damaged file', () => {
    const ok = runNode([cli, 'checkpoint', 'verify', dir]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/ok +shard-00000-of-00001.safetensors/);
    expect(ok.stdout).toMatch(/ok: 1 files, \d+ bytes read and checked/);
    const copy = temporaryDirectory();
    fs.cpSync(dir, copy, { recursive: true });
    const shard = path.join(copy, 'second', 'shard-00000-of-00001.safetensors');
    const raw = fs.readFileSync(shard);
    raw[raw.length - 1] ^= 0xff;
    fs.writeFileSync(shard, raw);
    const bad = runNode([cli, 'checkpoint', 'verify', copy]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/FAILED +shard-00000-of-00001.safetensors .*fail their checksum/);
  });

  it('export writes model.safetensors; sizes take 5GB, 500MB or 4GiB', () => {
    const out = temporaryDirectory();
    const r = runNode([cli, 'checkpoint', 'export', dir, out, '--dtype', 'bf16']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/exported 2 tensors \(bf16\) into .*: model.safetensors; \d+ bytes/);
    expect(fs.readdirSync(out)).toEqual(['model.safetensors']);
    expect(parseByteSize('5GB', '-x')).toBe(5e9);
    expect(parseByteSize('4GiB', '-x')).toBe(4 * 1024 ** 3);
    expect(parseByteSize('1000', '-x')).toBe(1000);
  });

  it('a directory that is not a checkpoint, or a bad option: exit 1 with the reason', () => {
    const empty = temporaryDirectory();
    const r = runNode([cli, 'checkpoint', 'inspect', empty]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^mics: .* is not a checkpoint directory: it has neither a 'latest' file nor an index.json/);
    const d = runNode([cli, 'checkpoint', 'export', dir, empty, '--dtype', 'f16']);
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(/--dtype f16 is not valid: use f32 or bf16/);
  });
});
