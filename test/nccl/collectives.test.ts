/**
 * NCCL communicators on a GPU: a single-rank world runs every op and dtype on
 * DeviceTensors (in and out of place), views, and the error paths. Skipped, with the
 * reason printed, where the CUDA build, a device or NCCL is missing (run it with
 * scripts/gpu-check.sh on a GPU machine).
 */
import { spawnSync } from 'node:child_process';
import { gpuTest, ncclStatus } from '../helpers/require-gpu';
import { repoRoot } from '../helpers/run-node';

const nccl = ncclStatus();
const gpuIt = gpuTest(nccl.usable, nccl.detail, 'the NCCL GPU tests');

const script = `
const m = require('./dist/index');
const ARR = { f32: Float32Array, f64: Float64Array, bf16: Uint16Array, f16: Uint16Array, i8: Int8Array, u8: Uint8Array, i32: Int32Array, i64: BigInt64Array };
(async () => {
  const world = await m.init({ backend: 'nccl', timeoutMs: 60000 });
  const out = { backend: world.backend, transport: world.transport, cases: [] };
  for (const dtype of Object.keys(ARR)) {
    const n = 1001;
    const host = new ARR[dtype](n).map((_, i) => (dtype === 'i64' ? BigInt(i % 50) : i % 50));
    const a = m.DeviceTensor.fromHost(dtype, host);
    const b = m.DeviceTensor.alloc(dtype, n);
    const same = (t) => Buffer.from(t.download().buffer).equals(Buffer.from(host.buffer));
    await world.allGather(a, b); out.cases.push([dtype, 'allGather', same(b)]);
    await world.reduceScatter(a, b); out.cases.push([dtype, 'reduceScatter', same(b)]);
    for (const op of ['sum', 'max', 'min', 'prod', 'avg']) {
      await world.allReduce(a, b, { op }); out.cases.push([dtype, 'allReduce ' + op, same(b)]);
    }
    await world.allReduce(a); out.cases.push([dtype, 'allReduce in place', same(a)]);
    await world.broadcast(a, b, { root: 0 }); out.cases.push([dtype, 'broadcast', same(b)]);
    await world.allGather(a.view(0, 10), b.view(0, 10)); out.cases.push([dtype, 'views', same(b)]);
  }
  await world.barrier();
  const errors = {};
  try { await world.allReduce(new Float32Array(4)); } catch (e) { errors.host = e.code; }
  try { await world.allGather(m.DeviceTensor.alloc('f32', 4), m.DeviceTensor.alloc('f32', 5)); } catch (e) { errors.length = e.code; }
  try { await world.allReduce(m.DeviceTensor.alloc('f32', 4), m.DeviceTensor.alloc('f64', 4)); } catch (e) { errors.dtype = e.code; }
  out.errors = errors;
  world.destroy();
  console.log(JSON.stringify(out));
})().catch((e) => { console.log(JSON.stringify({ fatal: e.message, code: e.code })); process.exit(1); });`;

describe('NCCL backend on a GPU (single rank)', () => {
  gpuIt('runs every op and dtype on DeviceTensors, views, and rejects bad buffers clearly', () => {
    const result = spawnSync(process.execPath, ['-e', script], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 120000,
      env: { ...process.env, RANK: '0', WORLD_SIZE: '1', LOCAL_RANK: '0' },
    });
    const out = JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as {
      backend: string;
      transport: string;
      cases: [string, string, boolean][];
      errors: Record<string, string>;
    };
    expect(out).toMatchObject({ backend: 'nccl', transport: 'nccl' });
    for (const [dtype, op, ok] of out.cases) expect([dtype, op, ok]).toEqual([dtype, op, true]);
    expect(out.errors).toEqual({ host: 'MICS_INVALID_ARGUMENT', length: 'MICS_INVALID_ARGUMENT', dtype: 'MICS_INVALID_ARGUMENT' });
  }, 150000);
});
