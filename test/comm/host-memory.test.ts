/**
 * allocHost: host memory the ranks of a node read in place. It allocates zeroed
 * arrays of every dtype, rejects bad input by name, is freed when collected, and
 * under churn (fresh inputs every op) neither this process nor its peers keep
 * freed regions or their file descriptors. Exactness of the direct algorithms is
 * in collectives.test.ts, kill -9 during a direct op in failures.test.ts.
 */
import { allocHost, MAX_HOST_BYTES } from '../../lib/comm/host-memory';
import { DTYPES, type DType } from '../../lib/core/dtypes';
import { describeRanks, killAllRanks, runRanks } from '../helpers/ranks';
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
    ['f32', MAX_HOST_BYTES / 4 + 1, /count \d+ is not valid for f32: use a whole number in \[0, 17592186044416\]/],
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
