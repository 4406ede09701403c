/**
 * backend 'nccl' without a GPU or without NCCL fails cleanly, naming why, in both
 * builds; 'auto' falls back to the CPU backend. (With a GPU and NCCL these paths
 * are exercised by scripts/gpu-check.sh instead.)
 */
import * as fs from 'node:fs';
import { loadAddon } from '../../lib/core/native';
import { gpuTest } from '../helpers/require-gpu';
import { repoRoot, runNode } from '../helpers/run-node';

const cudaBuild = `${repoRoot}/build-cmake/Release/mics.node`;
const probe = `
const m = require('./dist/index');
const { loadAddon } = require('./dist/core/native');
(async () => {
  const out = { variant: loadAddon().variant };
  try { await m.init({ backend: 'nccl' }); out.init = 'ok'; } catch (e) { out.init = { code: e.code, message: e.message }; }
  const w = await m.init({ backend: 'auto' }); out.auto = w.backend; w.destroy();
  try { new (loadAddon().addon.Communicator)({ backend: 'nccl', rank: 0, size: 1, name: 'probe' }); out.native = 'ok'; }
  catch (e) { out.native = { code: e.code, message: e.message }; }
  console.log(JSON.stringify(out));
})();`;

function run(variant: 'cpu' | 'cuda', env: NodeJS.ProcessEnv = {}): Record<string, unknown> {
  const result = runNode(['-e', probe], { RANK: '0', WORLD_SIZE: '1', MICS_NATIVE_VARIANT: variant, ...env });
  if (result.status !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe("backend 'nccl' without a usable GPU", () => {
  it('the node-gyp build refuses it, saying it needs the CUDA build; auto picks cpu', () => {
    const out = run('cpu');
    expect(out.auto).toBe('cpu');
    expect(out.init).toMatchObject({ code: 'MICS_UNAVAILABLE', message: expect.stringMatching(/not available here/) });
    expect(out.native).toMatchObject({ code: 'MICS_UNAVAILABLE', message: expect.stringMatching(/needs the CUDA build/) });
  });

  const cudaIt = gpuTest(fs.existsSync(cudaBuild), `${cudaBuild} not built (npm run build:cmake)`, 'the CUDA-build checks');

  cudaIt('the CUDA build names the missing library or device', () => {
    const out = run('cuda', { MICS_NCCL_LIBRARY: '/nonexistent/libnccl.so.2' });
    expect(out.auto).toBe('cpu');
    const native = out.native as { code: string; message: string };
    expect(native.code).toBe('MICS_UNAVAILABLE');
    // Either NCCL is missing (names the search) or, where NCCL exists, the device is.
    expect(native.message).toMatch(/libnccl\.so\.2 not found \(searched: .*\/nonexistent\/libnccl\.so\.2|no CUDA device/);
  });

  it('splitInto (ncclCommSplit) is refused on a CPU communicator, and refuses a child that is not a Communicator', async () => {
    const { addon } = loadAddon();
    const c = new addon.Communicator({ backend: 'cpu', rank: 0, size: 1, node: 0, host: '127.0.0.1', name: 'solo' });
    try {
      await c.connect([c.address], 5000);
      expect(c.canSplit).toBe(false);
      const code = (fn: () => unknown) => {
        try {
          fn();
          return 'no error';
        } catch (e) {
          return `${(e as { code?: string }).code}: ${(e as Error).message}`;
        }
      };
      const spoof = Object.create(Object.getPrototypeOf(c) as object) as typeof c;
      expect(code(() => c.splitInto(spoof, 0, 0, 1000))).toBe('MICS_INVALID_ARGUMENT: splitInto: child must be a Communicator or null');
      expect(code(() => c.splitInto({} as typeof c, 0, 0, 1000))).toBe('MICS_INVALID_ARGUMENT: splitInto: child must be a Communicator or null');
      expect(code(() => c.splitInto(null, 0, 0, 1000))).toBe('MICS_INVALID_ARGUMENT: splitInto: color 0 needs a child communicator');
      expect(code(() => c.splitInto(c, -1, 0, 1000))).toBe('MICS_INVALID_ARGUMENT: splitInto: color -1 (no part) takes no child');
      expect(code(() => c.splitInto(null, -1, 0, 1000))).toMatch(/^MICS_UNAVAILABLE: split: (this communicator cannot use ncclCommSplit|ncclCommSplit needs the CUDA build)/);
    } finally {
      c.destroy();
    }
  });
});
