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
  readWeights,
  SafetensorsFile,
  WeightsSource,
  writeSafetensors,
  type Communicator,
  type Engine,
  type EngineOptions,
  type MicsGroups,
} from '../../lib';
import { readFully, writeFully } from '../../lib/engine/checkpoint/io';
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

  it('the writer refuses arguments of the wrong kind with MICS_INVALID_ARGUMENT naming them, and writes no file', async () => {
    const file = path.join(temporaryDirectory(), 'x.safetensors');
    const data = Float32Array.of(1);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => writeSafetensors(file, null as never), /tensors null is not valid: use an array of \{name, dtype, shape, data\}/],
      [() => writeSafetensors(file, 5 as never), /tensors 5 is not valid: use an array/],
      [() => writeSafetensors(file, { a: data } as never), /tensors \{"a":"a Float32Array of 4 bytes"\} is not valid: use an array/],
      [() => writeSafetensors(file, [null] as never), /tensor 0 \(null\) is not valid: use \{name, dtype, shape, data\}/],
      [() => writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [1] }] as never), /tensor 'a': data undefined is not valid: use a TypedArray or DataView/],
      [() => writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [1], data }], null as never), /metadata null is not valid: use an object of strings/],
      [() => writeSafetensors(null as never, [{ name: 'a', dtype: 'F32', shape: [1], data }]), /file null is not valid: give a path/],
    ];
    for (const [call, message] of cases) {
      const err = await rejection(call());
      expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(message)]);
    }
    expect(fs.existsSync(file)).toBe(false);
  });

  /**
   * A valid file of one tensor whose data section is a hole: a sparse file takes no
   * disk space, so a tensor of any size is cheap to make.
   */
  function sparseFile(dtype: string, shape: number[], bytes: number): string {
    const file = path.join(temporaryDirectory(), 'large.safetensors');
    const json = Buffer.from(JSON.stringify({ t: { dtype, shape, data_offsets: [0, bytes] } }), 'utf8');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([prefix, json]));
    fs.truncateSync(file, 8 + json.length + bytes);
    return file;
  }

  it('readWeights refuses, before allocating anything, a dtype it does not convert (BOOL [2^33]) and a tensor larger than one Float32Array (F32 [2^32 + 2])', async () => {
    const bool = sparseFile('BOOL', [2 ** 33], 2 ** 33);
    const err = await rejection(readWeights(bool));
    expect([err.code, err.message]).toEqual(['MICS_MISMATCH', `${bool}: tensor 't' is BOOL; weights must be F32, F16, BF16 or F64`]);
    const f32 = sparseFile('F32', [2 ** 32 + 2], 4 * (2 ** 32 + 2));
    const large = await rejection(readWeights(f32));
    expect([large.code, large.message]).toEqual([
      'MICS_INVALID_ARGUMENT',
      `${f32}: tensor 't' has 4294967298 elements, more than mics puts in one Float32Array (4294967296): read it in ranges with WeightsSource.readInto`,
    ]);
  });

  it('readWeights converts F16, BF16 and F64 piece by piece: values across the pieces come out right', async () => {
    const file = path.join(temporaryDirectory(), 'x.safetensors');
    const n = 2 ** 22 + 3; // more than one conversion piece
    const halfBits = [0x3c00, 0xc000, 0x3800]; // 1, -2, 0.5
    const half = (i: number): number => [1, -2, 0.5][i % 3];
    const f16 = Uint16Array.from({ length: n }, (_, i) => halfBits[i % 3]);
    const f64 = Float64Array.from({ length: n }, (_, i) => i / 8);
    await writeSafetensors(file, [
      { name: 'h', dtype: 'F16', shape: [n], data: f16 },
      { name: 'b', dtype: 'BF16', shape: [2], data: Uint16Array.of(0x3f80, 0xc040) },
      { name: 'd', dtype: 'F64', shape: [n], data: f64 },
    ]);
    const weights = await readWeights(file);
    for (const i of [0, 1, 2, 2 ** 22 - 1, 2 ** 22, 2 ** 22 + 1, n - 1]) expect([i, weights.h[i]]).toEqual([i, half(i)]);
    expect(Array.from(weights.b)).toEqual([1, -3]);
    expect(weights.d[n - 1]).toBe((n - 1) / 8);
    expect(weights.d[2 ** 22]).toBe(2 ** 22 / 8);
    const source = await WeightsSource.open(file);
    const some = new Float32Array(4);
    await source.readInto('d', 2 ** 22 - 2, some);
    await source.close();
    expect(Array.from(some)).toEqual([0, 1, 2, 3].map((k) => (2 ** 22 - 2 + k) / 8));
  });

  it('readInto refuses a target that is not a Float32Array (WeightsSource and Checkpoint alike)', async () => {
    const file = path.join(temporaryDirectory(), 'x.safetensors');
    await writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
    const source = await WeightsSource.open(file);
    const err = await rejection(source.readInto('a', 0, null as never));
    await source.close();
    expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', `read of tensor 'a' of ${file}: the target must be a Float32Array`]);
    const dir = temporaryDirectory();
    await (await engineWith()).save(dir);
    const checkpoint = await Checkpoint.open(dir);
    const read = await rejection(checkpoint.readInto('master', 'a.bias', 0, new Uint8Array(16) as never));
    await checkpoint.close();
    expect([read.code, read.message]).toEqual(['MICS_INVALID_ARGUMENT', "read of 'a.bias': the target must be a Float32Array"]);
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

describe('an index that claims more than its files hold: MICS_CORRUPT naming it, before anything is allocated', () => {
  const SHARD = 'shard-00000-of-00001.safetensors';
  let source: string;

  beforeAll(async () => {
    source = temporaryDirectory();
    const saver = await engineWith();
    await train(saver, 1);
    await saver.save(source);
  });

  /** A copy of the saved checkpoint whose index.json `edit` changed. */
  function edited(edit: (index: { parameters: { shape: number[]; numel: number; pieces: unknown[] }[]; files: { bytes: number }[]; checksumChunkBytes: number }) => void): string {
    const root = temporaryDirectory();
    fs.cpSync(source, root, { recursive: true });
    const file = path.join(root, 'step-00000001', 'index.json');
    const index = JSON.parse(fs.readFileSync(file, 'utf8'));
    edit(index);
    fs.writeFileSync(file, JSON.stringify(index));
    return root;
  }

  /** 'a.weight' as one piece of `numel` elements in the one shard file. */
  function huge(index: { parameters: { shape: number[]; numel: number; pieces: unknown[] }[] }, numel: number): void {
    Object.assign(index.parameters[0], { shape: [numel], numel, pieces: [{ file: SHARD, start: 0, length: numel }] });
  }

  it('a parameter of 2^31 elements in a file of a few hundred bytes: Checkpoint.open (for readAll) and exportCheckpoint name the index, the parameter and the file; nothing is exported', async () => {
    const dir = edited((index) => huge(index, 2 ** 31));
    const message = new RegExp(
      `^${path.join(dir, 'step-00000001', 'index.json')} is not a valid checkpoint index: parameter 'a.weight' \\(numel 2147483648\\) places \\d+ bytes ` +
        `in ${SHARD} \\(3 states of 4 bytes per element, with the parameters before it\\), more than the file's "bytes" \\(\\d+\\)$`,
    );
    const err = await rejection(Checkpoint.open(dir).then((checkpoint) => checkpoint.readAll()));
    expect([err.code, err.message]).toEqual(['MICS_CORRUPT', expect.stringMatching(message)]);
    const out = path.join(temporaryDirectory(), 'hf');
    const exported = await rejection(exportCheckpoint(dir, out));
    expect([exported.code, exported.message]).toEqual(['MICS_CORRUPT', expect.stringMatching(message)]);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('and with the file\'s "bytes" raised to match, readAll checks the shard file\'s real size before allocating the parameter', async () => {
    const dir = edited((index) => {
      huge(index, 2 ** 33);
      index.files[0].bytes = 2 ** 40;
    });
    const checkpoint = await Checkpoint.open(dir);
    const err = await rejection(checkpoint.readAll());
    await checkpoint.close();
    expect([err.code, err.message]).toEqual(['MICS_CORRUPT', expect.stringMatching(new RegExp(`${SHARD} has \\d+ bytes but the index says 1099511627776 \\(truncated\\)$`))]);
  });

  it('a checksum chunk over 1 GiB (a read buffer of that size): MICS_CORRUPT naming checksumChunkBytes', async () => {
    const dir = edited((index) => {
      index.checksumChunkBytes = 2 ** 40;
    });
    const err = await rejection(Checkpoint.open(dir));
    expect([err.code, err.message]).toEqual(['MICS_CORRUPT', expect.stringMatching(/index.json is not a valid checkpoint index: checksumChunkBytes 1099511627776 \(use a multiple of 8 in \[8, 1073741824\]\)$/)]);
  });

  describe('a parameter over 4 GiB that the files do hold is read and written in pieces (one Uint8Array holds at most 2^32 bytes)', () => {
    const NUMEL = 2 ** 30 + 4;
    let big: Float32Array | undefined;
    // 4 GiB + 16 bytes that are never touched: the pages are not allocated.
    beforeAll(() => (big = new Float32Array(NUMEL)));
    afterAll(() => (big = undefined));

    it('Checkpoint.plan cuts the target into task-sized views', async () => {
      const dir = edited((index) => {
        huge(index, NUMEL);
        index.files[0].bytes = 2 ** 40;
      });
      const checkpoint = await Checkpoint.open(dir);
      const tasks = checkpoint.plan('master', 'a.weight', 0, big as Float32Array);
      await checkpoint.close();
      expect(tasks.length).toBe(257); // 256 tasks of 16 MiB and one of 16 bytes
      expect(tasks.reduce((sum, t) => sum + (t.target as Uint8Array).length, 0)).toBe(4 * NUMEL);
      expect([tasks[256].target?.byteOffset, tasks[256].target?.length]).toEqual([2 ** 32, 16]);
    });

    it('writeFully and readFully cover every byte once, in requests of at most 16 MiB', async () => {
      const requests: { kind: string; at: number; length: number; position: number }[] = [];
      const request = (kind: string) => async (buffer: Uint8Array, offset: number, length: number, position: number) => {
        requests.push({ kind, at: buffer.byteOffset + offset, length, position });
        return { bytesWritten: length, bytesRead: length };
      };
      const handle = { write: request('write'), read: request('read') } as unknown as fs.promises.FileHandle;
      await writeFully(handle, big as Float32Array, 100, 'big.safetensors');
      await readFully(handle, big as Float32Array, 100, 'big.safetensors');
      for (const kind of ['write', 'read']) {
        const mine = requests.filter((r) => r.kind === kind);
        expect([kind, mine.length, mine.reduce((sum, r) => sum + r.length, 0)]).toEqual([kind, 257, 4 * NUMEL]);
        expect(mine.every((r) => r.position === 100 + r.at && r.length <= 16 * 2 ** 20)).toBe(true);
      }
    });
  });
});

describe('a directory that cannot be created', () => {
  // /proc/self is a directory, but mkdir in it says ENOENT: Node 20's recursive mkdir retried
  // that forever, and the engine's later saves, loads and exports queued behind it.
  const procOnly = process.platform === 'linux' ? it : it.skip;

  procOnly('save: MICS_SYSTEM at once naming the component and the error code; the next save of the engine works', async () => {
    const engine = await engineWith();
    await train(engine, 1);
    const err = await rejection(engine.save('/proc/self/mics-nope/checkpoints'));
    expect([err.code, err.message]).toEqual(['MICS_SYSTEM', expect.stringMatching(/^create directory \/proc\/self\/mics-nope\/checkpoints: cannot create \/proc\/self\/mics-nope: .*\(ENOENT\)$/)]);
    const dir = path.join(temporaryDirectory(), 'new', 'checkpoints');
    expect((await engine.save(dir)).step).toBe(1);
    expect(fs.readdirSync(dir).sort()).toEqual(['latest', 'step-00000001']);
  }, 10000);

  procOnly('exportCheckpoint and exportWeights: the same, at once', async () => {
    const source = temporaryDirectory();
    const engine = await engineWith();
    await engine.save(source);
    const exported = await rejection(exportCheckpoint(source, '/proc/self/mics-nope'));
    expect([exported.code, exported.message]).toEqual(['MICS_SYSTEM', expect.stringMatching(/^create directory \/proc\/self\/mics-nope: .*\(ENOENT\)$/)]);
    const live = await rejection(engine.exportWeights('/proc/self/mics-nope'));
    expect([live.code, live.message]).toEqual(['MICS_SYSTEM', expect.stringMatching(/^create directory \/proc\/self\/mics-nope: .*\(ENOENT\)$/)]);
    const out = temporaryDirectory();
    expect((await engine.exportWeights(out)).files).toEqual(['model.safetensors']);
  }, 10000);

  it('a path through a file, or to one: MICS_SYSTEM naming the file as not a directory; nothing written', async () => {
    const dir = temporaryDirectory();
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'x');
    const engine = await engineWith();
    const through = await rejection(engine.save(path.join(file, 'checkpoints')));
    expect([through.code, through.message]).toEqual(['MICS_SYSTEM', `create directory ${file}/checkpoints: ${file} exists and is not a directory (ENOTDIR)`]);
    const to = await rejection(engine.save(file));
    expect([to.code, to.message]).toEqual(['MICS_SYSTEM', `create directory ${file}: ${file} exists and is not a directory (ENOTDIR)`]);
    expect(fs.readdirSync(dir)).toEqual(['file']);
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
    // Paths and tags of any kind are named briefly: a BigInt or a cycle used to throw a
    // TypeError from JSON.stringify, a large array to be spelled out element by element.
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const [call, shown] of [
      [() => engine.save(5n as never), /^save: directory 5n is not valid: give a path$/],
      [() => engine.save(new Float32Array(1 << 22) as never), /^save: directory a Float32Array of 16777216 bytes is not valid: give a path$/],
      [() => engine.save(dir, { tag: cycle as never }), /^checkpoint tag a value of type object is not valid/],
      [() => engine.load(10n as never), /^checkpoint directory 10n is not valid: give a path$/],
      [() => engine.exportWeights([1n] as never), /^export: output directory \["1n"\] is not valid: give a path$/],
    ] as [() => Promise<unknown>, RegExp][]) {
      const err = await rejection(call());
      expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(shown)]);
    }
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
