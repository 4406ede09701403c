/**
 * Checkpoint files in one process (a one-rank world): the safetensors reader and
 * writer against the format's rules, and every kind of bad input a load, a save or
 * an import meets, each a MicsError with a stable code naming the file and what is
 * wrong, and none of them changing the engine or the directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Checkpoint,
  createEngine,
  createGroups,
  exportCheckpoint,
  init,
  SafetensorsFile,
  writeSafetensors,
  type Communicator,
  type Engine,
  type EngineOptions,
  type MicsGroups,
} from '../../lib';
import { removeTemporaryDirectories, temporaryDirectory } from '../helpers/checkpoints';
import { rejection } from '../helpers/errors';

const parameters = [
  { name: 'a.weight', shape: [4, 3], unit: 'a' },
  { name: 'a.bias', shape: [4], unit: 'a' },
  { name: 'b.weight', shape: [2, 4], unit: 'b' },
];

let world: Communicator;
let groups: MicsGroups;
beforeAll(async () => {
  world = await init({ backend: 'cpu', env: { RANK: '0', WORLD_SIZE: '1' } });
  groups = await createGroups(world, { partitionSize: 1 });
});
afterAll(() => {
  world.destroy();
  removeTemporaryDirectories();
});

function engineWith(options: Partial<EngineOptions> = {}): Promise<Engine> {
  return createEngine(groups, { parameters, optimizer: { type: 'adamw', lr: 0.1 }, init: { seed: 1 }, ...options });
}

async function train(engine: Engine, steps: number): Promise<void> {
  for (let s = 0; s < steps; s++) {
    for (const u of engine.units) {
      await engine.gather(u);
      const { grads } = engine.gradientBuffer(u);
      for (const g of Object.values(grads)) g.fill(0.5 + s);
      await engine.reduceGradients(u);
      engine.release(u);
    }
    await engine.step();
  }
}

function snapshot(engineParams: Record<string, Float32Array>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(engineParams).map(([k, v]) => [k, Array.from(v)]));
}

/** A directory's entries with each file's bytes (to show nothing changed). */
function listing(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d)) {
      const full = path.join(d, e);
      if (fs.statSync(full).isDirectory()) walk(full);
      else out[path.relative(dir, full)] = fs.readFileSync(full).toString('base64');
    }
  };
  walk(dir);
  return out;
}

describe('safetensors files', () => {
  it('writes the header padded with spaces to a multiple of 8, tensors back to back, and reads them back', async () => {
    const file = path.join(temporaryDirectory(), 'x.safetensors');
    const a = Float32Array.of(1, 2, 3, 4, 5, 6);
    const b = Uint16Array.of(7, 8, 9);
    const { bytes } = await writeSafetensors(
      file,
      [
        { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
        { name: 'b', dtype: 'BF16', shape: [3], data: b },
      ],
      { note: 'hi' },
    );
    const raw = fs.readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const text = raw.subarray(8, 8 + n).toString('utf8');
    expect(text.trimEnd()).toBe(JSON.stringify({ __metadata__: { note: 'hi' }, a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] }, b: { dtype: 'BF16', shape: [3], data_offsets: [24, 30] } }));
    expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
    expect(bytes).toBe(raw.length);
    expect(raw.length).toBe(8 + n + 30);
    const opened = await SafetensorsFile.open(file);
    expect(opened.header.metadata).toEqual({ note: 'hi' });
    expect(new Float32Array((await opened.readTensor('a')).buffer)).toEqual(a);
    expect(new Uint16Array((await opened.readTensor('b')).buffer)).toEqual(b);
    await opened.close();
  });

  it('the writer refuses duplicate names, unknown dtypes and data of the wrong size', async () => {
    const file = path.join(temporaryDirectory(), 'x.safetensors');
    const data = Float32Array.of(1);
    expect((await rejection(writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [1], data }, { name: 'a', dtype: 'F32', shape: [1], data }]))).message).toMatch(/'a' is listed twice/);
    expect((await rejection(writeSafetensors(file, [{ name: 'a', dtype: 'F33' as 'F32', shape: [1], data }]))).message).toMatch(/dtype F33 is not one of/);
    expect((await rejection(writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [2], data }]))).message).toMatch(/data has 4 bytes, its dtype and shape need 8/);
  });

  /** A file of `header` (JSON text, given as is) and `data` bytes. */
  function fileOf(header: string, data: number, lengthOverride?: bigint): string {
    const file = path.join(temporaryDirectory(), 'bad.safetensors');
    const json = Buffer.from(header, 'utf8');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([prefix, json, Buffer.alloc(data)]));
    return file;
  }
  const cases: [string, () => string, RegExp][] = [
    ['fewer than 8 bytes', () => {
      const f = path.join(temporaryDirectory(), 'short.safetensors');
      fs.writeFileSync(f, Buffer.alloc(5));
      return f;
    }, /it has 5 bytes, fewer than the 8-byte header length/],
    ['a header length past the end', () => fileOf('{}', 0, 1000n), /header length is 1000 bytes but the file has only 10 bytes/],
    ['a header length over 100 MB', () => fileOf('{}', 0, 200000000n), /more than the format's limit of 100000000/],
    ['a header that is not JSON', () => fileOf('{"a": ', 0), /the header is not JSON/],
    ['a header that is not an object', () => fileOf('[1, 2]', 0), /not a JSON object/],
    ['a name given twice', () => fileOf('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4), /names 'a' twice/],
    ['an unknown dtype', () => fileOf('{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}', 4), /tensor 'a' has dtype "F31"/],
    ['offsets that do not match the shape', () => fileOf('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4), /needs 8 bytes but data_offsets \[0, 4\) hold 4/],
    ['a hole in the data', () => fileOf('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8), /has a hole at bytes \[0, 4\)/],
    ['overlapping tensors', () => fileOf('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8), /overlaps/],
    ['bytes after the last tensor', () => fileOf('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 12), /8 bytes after the last tensor/],
    ['truncated data', () => fileOf('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 10), /truncated: the header needs \d+ bytes, the file has \d+/],
  ];
  it.each(cases)('rejects %s with MICS_CORRUPT naming the file', async (_name, make, message) => {
    const file = make();
    const err = await rejection(SafetensorsFile.open(file));
    expect(err.code).toBe('MICS_CORRUPT');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(message);
  });
});

describe('bad checkpoints: a named error, and the engine keeps its state', () => {
  let source: string;
  let engine: Engine;
  let before: Record<string, number[]>;
  const SHARD = 'shard-00000-of-00001.safetensors';

  beforeAll(async () => {
    source = temporaryDirectory();
    const saver = await engineWith();
    await train(saver, 2);
    await saver.save(source, { userState: { epoch: 1 } });
    engine = await engineWith({ init: { seed: 9 } });
    before = snapshot(await engine.fullParameters());
  });

  /** A copy of the saved checkpoint, changed by `damage(dir of the checkpoint)`. */
  function damaged(damage: (checkpointDir: string, root: string) => void): string {
    const root = temporaryDirectory();
    fs.cpSync(source, root, { recursive: true });
    damage(path.join(root, 'step-00000002'), root);
    return root;
  }

  const cases: [string, (dir: string, root: string) => void, string, RegExp][] = [
    ['a truncated shard file', (d) => fs.truncateSync(path.join(d, SHARD), 100), 'MICS_CORRUPT', new RegExp(`${SHARD} has 100 bytes but the index says \\d+ \\(truncated\\)`)],
    ['a corrupted header', (d) => {
      const f = path.join(d, SHARD);
      const raw = fs.readFileSync(f);
      raw[12] ^= 0x01; // inside the JSON: a changed character
      fs.writeFileSync(f, raw);
    }, 'MICS_CORRUPT', new RegExp(`${SHARD}.*(not a valid safetensors file|header fails its checksum)`)],
    ['a changed data byte (checksum mismatch)', (d) => {
      const f = path.join(d, SHARD);
      const raw = fs.readFileSync(f);
      raw[raw.length - 3] ^= 0x10;
      fs.writeFileSync(f, raw);
    }, 'MICS_CORRUPT', /bytes \[0, \d+\) of tensor '[a-z_]+\/b.weight' fail their checksum \(index [0-9a-f]{16}, file [0-9a-f]{16}\): the file is corrupt/],
    ['an index from a newer version', (d) => {
      const f = path.join(d, 'index.json');
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), formatVersion: 2, packageVersion: '9.0.0' }));
    }, 'MICS_UNAVAILABLE', /index.json was written by mics 9.0.0 in checkpoint format 2; this mics reads format 1 and older: upgrade mics/],
    ['an index that is not JSON', (d) => fs.writeFileSync(path.join(d, 'index.json'), '{"format": "mics-'), 'MICS_CORRUPT', /index.json is not a valid checkpoint index: it is not JSON/],
    ['an index of something else', (d) => fs.writeFileSync(path.join(d, 'index.json'), '{"format": "other"}'), 'MICS_INVALID_ARGUMENT', /index.json is not a mics checkpoint index/],
    ['a missing shard file', (d) => fs.rmSync(path.join(d, SHARD)), 'MICS_CORRUPT', new RegExp(`is incomplete: ${SHARD} is missing`)],
    ['a latest pointer to nothing', (_d, root) => fs.writeFileSync(path.join(root, 'latest'), 'step-00000099\n'), 'MICS_CORRUPT', /latest names checkpoint 'step-00000099', but .* does not exist/],
    ['a directory that is not a checkpoint', (_d, root) => fs.rmSync(path.join(root, 'latest')), 'MICS_INVALID_ARGUMENT', /is not a checkpoint directory: it has neither a 'latest' file nor an index.json \(checkpoints there: step-00000002\)/],
  ];
  it.each(cases)('%s', async (_name, damage, code, message) => {
    const dir = damaged(damage);
    const err = await rejection(engine.load(dir));
    expect([err.code, err.message]).toEqual([code, expect.stringMatching(message)]);
    expect(snapshot(await engine.fullParameters())).toEqual(before);
    expect(engine.stepCount).toBe(0);
  });

  it('a directory that does not exist, and a tag it does not have', async () => {
    expect((await rejection(engine.load(path.join(source, 'nope')))).message).toMatch(/checkpoint directory .*nope does not exist/);
    const err = await rejection(engine.load(source, { tag: 'step-7' }));
    expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(/has no checkpoint 'step-7' .*\(checkpoints there: step-00000002\)/)]);
  });

  it('a model with other parameters: MICS_MISMATCH listing what is missing, extra and shaped differently', async () => {
    const other = await createEngine(groups, {
      parameters: [
        { name: 'a.weight', shape: [3, 4], unit: 'a' },
        { name: 'c.weight', shape: [4], unit: 'a' },
        { name: 'b.weight', shape: [2, 4], unit: 'b' },
      ],
      optimizer: { type: 'adamw' },
    });
    const err = await rejection(other.load(source));
    expect(err.code).toBe('MICS_MISMATCH');
    expect(err.message).toMatch(/does not match the model's parameters: missing from the checkpoint: c.weight; in the checkpoint but not in the model: a.bias; shapes differ: 'a.weight' is \[4, 3\] in the checkpoint, \[3, 4\] in the model/);
  });

  it('another optimizer: MICS_MISMATCH; {weightsOnly: true} takes the weights and keeps the rest', async () => {
    const sgd = await engineWith({ optimizer: { type: 'sgd', momentum: 0.9 } });
    const err = await rejection(sgd.load(source));
    expect([err.code, err.message]).toEqual(['MICS_MISMATCH', expect.stringMatching(/holds \[master, exp_avg, exp_avg_sq\] \(optimizer adamw\); this engine's optimizer \(sgd\) keeps \[master, momentum\]: .*weightsOnly/)]);
    const result = await sgd.load(source, { weightsOnly: true });
    expect(result.step).toBe(0);
    expect(result.userState).toEqual({ epoch: 1 });
    const saved = await Checkpoint.open(source);
    expect(snapshot(await sgd.fullParameters())).toEqual(snapshot(await saved.readAll('master')));
    await saved.close();
  });

  it('verify() reports a damaged file and the intact ones', async () => {
    const dir = damaged((d) => {
      const f = path.join(d, SHARD);
      const raw = fs.readFileSync(f);
      raw[raw.length - 1] ^= 0x01;
      fs.writeFileSync(f, raw);
    });
    const checkpoint = await Checkpoint.open(dir);
    const report = await checkpoint.verify();
    await checkpoint.close();
    expect(report.ok).toBe(false);
    expect(report.files).toEqual([{ name: SHARD, bytes: expect.any(Number), ok: false, problem: expect.stringMatching(/fail their checksum/) }]);
  });
});

describe('bad saves change nothing on disk', () => {
  it('an open accumulation window, the latest tag, a bad tag, keep or user state: MICS_INVALID_ARGUMENT, the directory as it was', async () => {
    const dir = temporaryDirectory();
    const engine = await engineWith();
    await train(engine, 1);
    await engine.save(dir);
    const was = listing(dir);
    expect((await rejection(engine.save(dir, { tag: 'step-00000001' }))).message).toMatch(/'step-00000001' in .* is the latest one: save under another tag/);
    expect((await rejection(engine.save(dir, { tag: '../x' }))).message).toMatch(/checkpoint tag "..\/x" is not valid/);
    expect((await rejection(engine.save(dir, { keep: 0 }))).message).toMatch(/keep 0 is not valid/);
    expect((await rejection(engine.save(dir, { userState: { n: 1n } }))).message).toMatch(/userState is not JSON-serialisable/);
    expect((await rejection(engine.save(dir, { userState: () => 1 }))).message).toMatch(/userState \(function\) is not JSON-serialisable/);
    await engine.gather('a'); // a micro-step begins
    engine.reduceGradients('a', { 'a.weight': new Float32Array(12), 'a.bias': new Float32Array(4) });
    const open = await rejection(engine.save(dir, { tag: 'other' }));
    expect([open.code, open.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(/accumulation window is open/)]);
    expect(listing(dir)).toEqual(was);
  });

  it('keep: n leaves the newest n checkpoints', async () => {
    const dir = temporaryDirectory();
    const engine = await engineWith();
    for (let s = 1; s <= 4; s++) {
      await train(engine, 1);
      await engine.save(dir, { keep: 2 });
    }
    expect(fs.readdirSync(dir).sort()).toEqual(['latest', 'step-00000003', 'step-00000004']);
  });

  it('fp16: the loss scaler state travels', async () => {
    const dir = temporaryDirectory();
    const engine = await engineWith({ precision: 'fp16', lossScaling: { initialScale: 1024, window: 1 } });
    await train(engine, 3);
    const scale = engine.lossScale;
    expect(scale).not.toBe(1024);
    await engine.save(dir);
    const fresh = await engineWith({ precision: 'fp16', lossScaling: { initialScale: 1024, window: 1 } });
    await fresh.load(dir);
    expect(fresh.lossScale).toBe(scale);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'step-00000003', 'index.json'), 'utf8')).lossScaler).toMatchObject({ scale });
  });
});

describe('importing weights', () => {
  it('missing, extra and mismatched tensors: MICS_MISMATCH naming each; the engine keeps its weights', async () => {
    const dir = temporaryDirectory();
    await writeSafetensors(path.join(dir, 'model.safetensors'), [
      { name: 'a.weight', dtype: 'F32', shape: [3, 4], data: new Float32Array(12) },
      { name: 'b.weight', dtype: 'F32', shape: [2, 4], data: new Float32Array(8) },
      { name: 'lm_head', dtype: 'F32', shape: [1], data: new Float32Array(1) },
    ]);
    const engine = await engineWith();
    const was = snapshot(await engine.fullParameters());
    const err = await rejection(engine.importWeights(dir));
    expect(err.code).toBe('MICS_MISMATCH');
    expect(err.message).toMatch(/does not match the model's parameters: missing from the file: a.bias; in the file but not in the model: lm_head; shapes differ: 'a.weight' is \[3, 4\] in the file, \[4, 3\] in the model/);
    expect(snapshot(await engine.fullParameters())).toEqual(was);
  });

  it('a bf16 export imports as its values widened; a sharded export through its index', async () => {
    const source = temporaryDirectory();
    const saver = await engineWith();
    await train(saver, 1);
    await saver.save(source);
    const out = temporaryDirectory();
    await exportCheckpoint(source, out, { dtype: 'bf16', maxShardBytes: 30 });
    expect(fs.readdirSync(out).sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    const engine = await engineWith();
    const result = await engine.importWeights(out);
    expect(result.tensors).toBe(3);
    const saved = await saver.fullParameters();
    const got = await engine.fullParameters();
    for (const [name, values] of Object.entries(saved)) {
      values.forEach((v, i) => expect(Math.abs(got[name][i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8));
    }
  });

  it('a path that is no model: MICS_INVALID_ARGUMENT', async () => {
    const engine = await engineWith();
    expect((await rejection(engine.importWeights(temporaryDirectory()))).message).toMatch(/holds neither model.safetensors nor model.safetensors.index.json/);
  });
});
