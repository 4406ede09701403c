/**
 * The CUDA parts where no GPU is usable: the CMake build with CUDA loads without a
 * driver and says why, and every device-tensor call fails with MICS_UNAVAILABLE
 * naming the reason, in both builds. Each case runs in a child process so the build
 * variant can be chosen (MICS_NATIVE_VARIANT) independently of this jest process.
 *
 * `npm test` runs before the CMake build in CI, so the cases that need
 * build-cmake/Release/mics.node are skipped, with the reason printed, when it is absent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gpuTest } from '../helpers/require-gpu';
import { repoRoot, runNode } from '../helpers/run-node';

interface Probe {
  variant: string;
  file: string;
  build: { cuda: boolean; buildSystem: string; cudaVersion: string };
  caps: { compiled: boolean; deviceCount: number; reason?: string; driverVersion: number; runtimeVersion: number };
  avail: { ok: boolean; reason: string };
  nativeExports: { DeviceTensor: string; cudaKernels: string[]; cudaTotalMemory: string };
  calls: Record<string, { code?: string; name?: string; message: string; micsError: boolean } | 'ok'>;
}

// Runs in the child: loads the addon the way lib/ does and tries every entry point.
const probeScript = `
const { loadAddon } = require('./dist/core/native');
const { cudaAvailable, cudaTotalMemory, DeviceTensor, cudaKernels } = require('./dist/cuda/device-tensor');
const loaded = loadAddon();
const addon = loaded.addon;
const calls = {};
const { MicsError } = require('./dist/core/errors');
const attempt = (name, fn) => {
  try { fn(); calls[name] = 'ok'; } catch (e) { calls[name] = { code: e.code, name: e.name, message: e.message, micsError: e instanceof MicsError }; }
};
attempt('ts.alloc', () => DeviceTensor.alloc('f32', 16));
attempt('ts.fromHost', () => DeviceTensor.fromHost('f32', new Float32Array(4)));
attempt('ts.adamw', () => cudaKernels.adamw({ step: 1 }));
attempt('ts.cudaTotalMemory', () => cudaTotalMemory(0));
if (addon.DeviceTensor) {
  attempt('native.alloc', () => addon.DeviceTensor.alloc('f32', 16));
  attempt('native.allocBadDtype', () => addon.DeviceTensor.alloc('f8', 16));
  attempt('native.construct', () => new addon.DeviceTensor());
  for (const k of Object.keys(addon.cudaKernels)) attempt('native.' + k, () => addon.cudaKernels[k]());
  attempt('native.cudaTotalMemory', () => addon.cudaTotalMemory(0));
  attempt('native.cudaTotalMemoryBadDevice', () => addon.cudaTotalMemory(-1));
  attempt('native.cudaTotalMemoryFraction', () => addon.cudaTotalMemory(1.5));
  attempt('native.cudaTotalMemoryString', () => addon.cudaTotalMemory('0'));
}
console.log(JSON.stringify({
  variant: loaded.variant,
  file: loaded.file,
  build: addon.buildInfo(),
  caps: addon.capabilities().cuda,
  avail: cudaAvailable(),
  nativeExports: {
    DeviceTensor: typeof addon.DeviceTensor,
    cudaKernels: addon.cudaKernels ? Object.keys(addon.cudaKernels).sort() : [],
    cudaTotalMemory: typeof addon.cudaTotalMemory,
  },
  calls,
}));
`;

/** What the child saw, or undefined (with the reason printed) when that build variant does not exist. */
function probe(variant: 'cpu' | 'cuda'): Probe | undefined {
  const result = runNode(['-e', probeScript], { MICS_NATIVE_VARIANT: variant });
  const missing = /no mics addon found under .*|MICS_NATIVE_VARIANT=cuda but .* does not exist.*/.exec(result.stderr);
  if (result.status !== 0 && missing) {
    console.log(`skipped (${variant} build): ${missing[0]}`);
    return undefined;
  }
  if (result.status !== 0) throw new Error(`probe (${variant}) failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as Probe;
}

const kernelNames = [
  'accumulate', 'adamw', 'cast', 'checkNonFiniteInto', 'hasNonFinite', 'scale', 'sgd', 'sumOfSquares', 'sumOfSquaresInto',
].sort();

const cudaBuildFile = path.join(repoRoot, 'build-cmake', 'Release', 'mics.node');
const cudaBuildExists = fs.existsSync(cudaBuildFile);
const cudaBuildIt = gpuTest(
  cudaBuildExists,
  `${cudaBuildFile} does not exist (run \`npm run build:cmake\` where nvcc is found)`,
  'the CUDA-build cases',
);
// The entry point registers DeviceTensor once csrc/napi/addon.cc calls InitDeviceTensor.
const registered = /InitDeviceTensor\s*\(/.test(fs.readFileSync(path.join(repoRoot, 'csrc/napi/addon.cc'), 'utf8'));
const registeredIt = registered ? cudaBuildIt : it.skip;
if (cudaBuildExists && !registered) {
  console.log('skipped native DeviceTensor cases: csrc/napi/addon.cc does not call mics::napi::InitDeviceTensor yet');
}

describe('CUDA parts without a usable GPU', () => {
  it('the node-gyp build has no device tensors and every call says why (MICS_UNAVAILABLE)', () => {
    const p = probe('cpu');
    if (p === undefined) return;
    if (p.build.cuda) {
      console.log(`skipped: the CPU variant resolved to a CUDA build (${p.file})`);
      return;
    }
    expect(p.caps.compiled).toBe(false);
    expect(p.avail.ok).toBe(false);
    expect(p.avail.reason).toMatch(/no CUDA parts/);
    expect(p.nativeExports.DeviceTensor).toBe('undefined');
    expect(p.nativeExports.cudaTotalMemory).toBe('undefined');
    for (const name of ['ts.alloc', 'ts.fromHost', 'ts.adamw', 'ts.cudaTotalMemory']) {
      const call = p.calls[name];
      expect(call).toMatchObject({ code: 'MICS_UNAVAILABLE' });
      expect(call !== 'ok' && call.message).toMatch(/CUDA is unavailable: .*no CUDA parts/);
    }
  });

  cudaBuildIt('the CMake build compiled the CUDA parts and loads without a driver, saying why', () => {
    const p = probe('cuda');
    if (p === undefined) throw new Error(`${cudaBuildFile} exists but the loader did not find it`);
    expect(p.variant).toBe('cuda');
    expect(p.file).toBe(cudaBuildFile);
    expect(p.build).toMatchObject({ cuda: true, buildSystem: 'cmake-js' });
    expect(p.build.cudaVersion).toMatch(/^\d+\.\d+/);
    expect(p.caps.compiled).toBe(true);
    expect(p.caps.runtimeVersion).toBeGreaterThan(0);
    if (p.caps.deviceCount > 0) {
      console.log(`skipped the no-device assertions: this machine has ${p.caps.deviceCount} CUDA device(s)`);
      return;
    }
    expect(p.caps.reason).toMatch(/driver|device/i);
    if (p.caps.driverVersion === 0) expect(p.caps.reason).toMatch(/no CUDA driver/);
    expect(p.avail).toEqual({ ok: false, reason: p.caps.reason });
  });

  registeredIt('the CMake build exports DeviceTensor and cudaKernels', () => {
    const p = probe('cuda');
    if (p === undefined) throw new Error(`${cudaBuildFile} exists but the loader did not find it`);
    if (p.nativeExports.DeviceTensor === 'undefined') {
      throw new Error(
        `${cudaBuildFile} does not export DeviceTensor although csrc/napi/addon.cc registers it: ` +
          'the build is older than the sources, run `npm run build:cmake`',
      );
    }
    expect(p.nativeExports.DeviceTensor).toBe('function');
    expect(p.nativeExports.cudaKernels).toEqual(kernelNames);
    expect(p.nativeExports.cudaTotalMemory).toBe('function');
  });

  registeredIt('without a device every DeviceTensor and kernel call throws MICS_UNAVAILABLE naming why', () => {
    const p = probe('cuda');
    if (p === undefined) throw new Error(`${cudaBuildFile} exists but the loader did not find it`);
    if (p.caps.deviceCount > 0) {
      console.log(`skipped: this machine has ${p.caps.deviceCount} CUDA device(s), the no-device path cannot be exercised`);
      return;
    }
    if (p.nativeExports.DeviceTensor === 'undefined') throw new Error(`${cudaBuildFile} is stale: run \`npm run build:cmake\``);
    const reason = p.caps.reason ?? '';
    expect(reason.length).toBeGreaterThan(0);
    const unavailable = [
      'ts.alloc', 'ts.fromHost', 'ts.adamw', 'ts.cudaTotalMemory', 'native.alloc', 'native.allocBadDtype', 'native.cudaTotalMemory',
      ...kernelNames.map((k) => `native.${k}`),
    ];
    for (const name of unavailable) {
      const call = p.calls[name];
      // Thrown at the call (kernels return Promises only once they can run), as MicsErrors.
      expect({ name, code: call !== 'ok' ? call.code : 'ok', micsError: call !== 'ok' && call.micsError }).toEqual({
        name,
        code: 'MICS_UNAVAILABLE',
        micsError: true,
      });
      expect(call !== 'ok' && call.message).toContain(`CUDA is unavailable: ${reason}`);
    }
    expect(p.calls['native.alloc']).toMatchObject({ message: `DeviceTensor.alloc: CUDA is unavailable: ${reason}` });
    expect(p.calls['native.adamw']).toMatchObject({ message: `cudaKernels.adamw: CUDA is unavailable: ${reason}` });
    expect(p.calls['native.cudaTotalMemory']).toMatchObject({ message: `cudaTotalMemory: CUDA is unavailable: ${reason}` });
    for (const [name, shown] of [['BadDevice', '-1'], ['Fraction', '1.5'], ['String', '0']]) {
      expect(p.calls[`native.cudaTotalMemory${name}`]).toMatchObject({
        code: 'MICS_INVALID_ARGUMENT',
        message: `cudaTotalMemory: device ${shown} is not valid: use an integer index >= 0`,
      });
    }
    // Objects come only from alloc: the constructor refuses JS callers, with a MicsError like every other error.
    expect(p.calls['native.construct']).toMatchObject({
      name: 'MicsError',
      code: 'MICS_INVALID_ARGUMENT',
      message: expect.stringMatching(/DeviceTensor\.alloc/),
    });
  });
});
