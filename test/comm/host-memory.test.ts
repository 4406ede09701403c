/**
 * allocHost: host memory the ranks of a node read in place. It allocates zeroed
 * arrays of every dtype, rejects bad input by name, is freed when collected, and
 * under churn (fresh inputs every op) neither this process nor its peers keep
 * freed regions or their file descriptors. Exactness of the direct algorithms is
 * in collectives.test.ts, kill -9 during a direct op in failures.test.ts.
 */
import { constants as bufferConstants } from 'node:buffer';
import * as path from 'node:path';
import { allocHost, maxHostElements } from '../../lib/comm/host-memory';
import { DTYPES, elementBytes, type DType } from '../../lib/core/dtypes';
import { describeRanks, killAllRanks, repoRoot, runRanks } from '../helpers/ranks';
import { runNode } from '../helpers/run-node';

afterAll(() => killAllRanks());

const ARRAY_TYPE: Record<DType, string> = {
  f32: 'Float32Array',
  f64: 'Float64Array',
  f16: 'Uint16Array',
  bf16: 'Uint16Array',
  i8: 'Int8Array',
  u8: 'Uint8Array',
  i32: 'Int32Array',
  i64: 'BigInt64Array',
};

describe('allocHost(dtype, count)', () => {
  it.each(DTYPES.map((d) => [d]))('returns a zero-filled, writable %s array of that length', (dtype) => {
    const array = allocHost(dtype, 1000);
    expect(array.constructor.name).toBe(ARRAY_TYPE[dtype]);
    expect(array.length).toBe(1000);
    expect(array.every((v: number | bigint) => v === 0 || v === 0n)).toBe(true);
    if (dtype === 'i64') (array as BigInt64Array)[999] = -5n;
    else (array as Float32Array)[999] = 7;
    expect(array[999] === 7 || array[999] === -5n).toBe(true);
  });

  it('gives an empty array for count 0', () => {
    expect(allocHost('f32', 0)).toHaveLength(0);
  });

  it.each([
    ['f32', -1, /count -1 is not valid for f32/],
    ['f32', 1.5, /count 1.5 is not valid for f32/],
    ['f64', Number.NaN, /count NaN is not valid for f64/],
    ['f32', 2 ** 44 + 1, /count 17592186044417 is not valid for f32: use a whole number in \[0, \d+\]/],
    ['u8', bufferConstants.MAX_LENGTH + 1, /count \d+ is not valid for u8: use a whole number in \[0, \d+\] \(one Uint8Array holds at most/],
    ['f128', 4, /dtype 'f128' is not valid: use one of f32, f64/],
  ])('rejects %s x %p with MICS_INVALID_ARGUMENT naming the value', (dtype, count, message) => {
    let thrown: unknown;
    try {
      allocHost(dtype as DType, count as number);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(message) });
  });

  it('states its limit per dtype: what one TypedArray holds here, at most 2^46 bytes', () => {
    for (const dtype of DTYPES) {
      const expected = Math.min(bufferConstants.MAX_LENGTH, 2 ** 46 / elementBytes(dtype));
      expect([dtype, maxHostElements(dtype)]).toEqual([dtype, expected]);
    }
    // Node 20: 2^32 elements of any dtype (so f32 up to 16 GiB).
    if (bufferConstants.MAX_LENGTH === 2 ** 32) expect(maxHostElements('f32')).toBe(2 ** 32);
    expect(() => maxHostElements('f128' as DType)).toThrow(/dtype 'f128' is not valid/);
  });

  it('allocates exactly its limit for u8 (pages come on first touch): both ends are usable', () => {
    const max = maxHostElements('u8');
    if (max > 2 ** 33) return; // Node >= 22: the limit is the 2^46-byte cap, not worth mapping here
    const a = allocHost('u8', max);
    expect(a.length).toBe(max);
    a[0] = 1;
    a[max - 1] = 2;
    expect([a[0], a[max - 1], a[max - 2]]).toEqual([1, 2, 0]);
  });

  it('is freed when the array is garbage collected (its mapping and descriptor go)', () => {
    const script = `
      const { allocHost } = require('./dist/comm/host-memory');
      const addon = require('./dist/core/native').loadAddon().addon;
      const fs = require('fs');
      const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/memfd:mics-host')).length;
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const before = { regions: addon.hostRegionCount(), maps: maps(), fds: fds() };
      let kept = [];
      for (let i = 0; i < 50; i++) kept.push(allocHost('f32', 1 << 16));
      const during = { regions: addon.hostRegionCount(), maps: maps(), fds: fds() };
      kept = null;
      (async () => {
        // V8 sweeps array buffers concurrently and Node runs their finalizers later.
        for (let k = 0; k < 100 && addon.hostRegionCount() > before.regions; k++) {
          global.gc();
          await new Promise((r) => setTimeout(r, 10));
        }
        const after = { regions: addon.hostRegionCount(), maps: maps(), fds: fds() };
        console.log(JSON.stringify({ before, during, after }));
      })();`;
    const result = runNode(['--expose-gc', '-e', script]);
    expect(result.stderr).toBe('');
    const { before, during, after } = JSON.parse(result.stdout) as Record<string, Record<string, number>>;
    expect(during.regions - before.regions).toBe(50);
    expect(during.maps - before.maps).toBe(50);
    expect(during.fds - before.fds).toBe(50);
    expect(after).toEqual(before);
  });
});

describe('allocHost above 4 GiB', () => {
  // Before: anything above Node 20's 2^32-byte external-buffer limit aborted the
  // process (`free(): double free detected in tcache 2`).
  it('f32 arrays of 4 GiB - 4, 4 GiB + 8 and 6 GiB in one process on each of 2 ranks; a direct allReduce over the last 32768 elements', async () => {
    const results = await runRanks({ n: 2, script: path.join(repoRoot, 'test', 'fixtures', 'napi', 'large-host.js'), timeoutMs: 60000 });
    const summary = describeRanks(results);
    const GiB = 2 ** 30;
    for (const r of results) {
      if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(`rank ${r.rank} failed:\n${summary}`);
      const me = r.rank;
      expect(r.json.ends).toEqual(
        [4 * GiB - 4, 4 * GiB + 8, 6 * GiB].map((byteLength, i) => ({
          length: byteLength / 4,
          byteLength,
          first: 1000 * i + me + 0.5,
          last: -(1000 * i + me + 0.25),
          secondLast: 0,
        })),
      );
      expect(r.json.viewByteOffset).toBe(6 * GiB - 32768 * 4);
      expect([me, r.json.direct, r.json.wrong, r.json.firstAfter]).toEqual([me, 1, 0, 2000 + me + 0.5]);
    }
  }, 90000);
});

describe('allocHost under churn on 4 ranks', () => {
  it('fresh inputs every op: all direct and exact; freed regions leave this process and the peers', async () => {
    const iterations = 200;
    const results = await runRanks({
      n: 4,
      nodeArgs: ['--expose-gc'],
      args: ['hostChurn', JSON.stringify({ iterations })],
      timeoutMs: 120000,
    });
    const summary = describeRanks(results);
    for (const r of results) {
      if (r.code !== 0 || !r.json || r.json.fatal) throw new Error(`rank ${r.rank} failed:\n${summary}`);
      const { wrong, directOps, before, after, peakRegions } = r.json;
      const where = `rank ${r.rank}: ${JSON.stringify(r.json)}`;
      expect([where, wrong, directOps]).toEqual([where, 0, 2 * iterations + 2]);
      // Collected every 20 iterations: far fewer alive than the 200 allocated.
      expect([where, peakRegions <= 50]).toEqual([where, true]);
      expect([where, after.regions]).toEqual([where, before.regions]);
      // The peers' 200 freed inputs each are unmapped by the next direct op: what
      // stays mapped is our long-lived input and the peers' (4 mappings).
      expect([where, after.mappings]).toEqual([where, before.mappings]);
      expect([where, after.fds]).toEqual([where, before.fds]);
    }
  }, 150000);
});
