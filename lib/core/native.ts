/**
 * Loads the native addon and says what it is.
 *
 * Two builds can sit side by side: node-gyp's CPU build (build/Release, or a
 * prebuild under prebuilds/) and cmake-js's build with the CUDA parts
 * (build-cmake/Release). node-gyp-build alone would load whichever it finds
 * first, so the choice is explicit here: `MICS_NATIVE_VARIANT=cpu|cuda` forces one;
 * otherwise (`auto`) the CUDA build is preferred when it exists and is not older
 * than the CPU build (it is a superset, and loads without a driver thanks to static
 * cudart); a stale CUDA build left behind by an earlier checkout is never picked.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DType, HostArray } from './dtypes';
import { MicsError, invalidArgument } from './errors';

/** The package root (where package.json, build/ and prebuilds/ live). */
export const packageRoot = path.resolve(__dirname, '..', '..');

/** Build information compiled into the addon. */
export interface BuildInfo {
  version: string;
  compiler: string;
  buildSystem: string;
  /** Whether csrc/cuda was compiled in (CMake build with nvcc). */
  cuda: boolean;
  cudaVersion: string;
}

/** What the addon can use on this machine, probed at run time. */
export interface Capabilities {
  cpu: { available: boolean };
  nccl: {
    found: boolean;
    /** Every place searched for libnccl.so.2, in order. */
    searched: string[];
    path?: string;
    version?: string;
    versionCode?: number;
    /** Which optional entry points the library has (absent when not found). */
    nonBlocking?: boolean;
    split?: boolean;
    finalize?: boolean;
    lastError?: boolean;
    error?: string;
  };
  cuda: {
    compiled: boolean;
    deviceCount: number;
    /** Why deviceCount is 0. */
    reason?: string;
    /** The CUDA version the driver supports (12040 = 12.4); 0 without a driver. */
    driverVersion: number;
    /** The CUDA runtime compiled in (13000 = 13.0); 0 without CUDA parts. */
    runtimeVersion: number;
    /** The NVIDIA kernel module's version ("580.65.06"), '' when unknown (CUDA build only). */
    driverRelease?: string;
    /** A driver is installed but supports an older CUDA than the runtime (CUDA build only). */
    driverTooOld?: boolean;
  };
}

/** Options of a native communicator (csrc/napi/communicator_wrap.cc). */
export interface NativeCommunicatorOptions {
  /** 'cpu' (default) or 'nccl' (CUDA build only). */
  backend?: 'cpu' | 'nccl';
  /** CUDA device index (nccl). */
  device?: number;
  rank: number;
  size: number;
  /** The launcher's node rank: ranks with equal node use shared memory. */
  node: number;
  /** Address to listen on and advertise for TCP. */
  host: string;
  /** Group name used in every error. */
  name: string;
}

/** One op of a grouped call: kind, send, recv, dtype, op, root. */
export type NativeOp = [
  kind: 'allGather' | 'reduceScatter' | 'allReduce' | 'broadcast' | 'barrier',
  send: object | null,
  recv: object | null,
  dtype: string,
  op: string,
  root: number,
];

/** A native communicator; lib/comm/communicator.ts wraps it. */
export interface NativeCommunicator {
  readonly backend: 'cpu' | 'nccl';
  readonly address: string;
  readonly rank: number;
  readonly size: number;
  readonly name: string;
  /** 'none' until connected, then 'self', 'shm', 'tcp' or 'nccl'. */
  readonly transport: string;
  /** Ops queued or running. */
  readonly pending: number;
  /** Collectives that read the peers' registered inputs in place. */
  readonly directOps: number;
  connect(addresses: string[], timeoutMs: number): Promise<void>;
  collective(...args: [...NativeOp, timeoutMs: number, accumulate?: boolean]): Promise<void>;
  /** The already-resolved Promise that collective() returns for an op completed on the calling thread. */
  readonly settled: Promise<void>;
  /** Several ops as one grouped call (NCCL group; in order on the CPU backend). */
  group(ops: NativeOp[], timeoutMs: number): Promise<void>;
  abort(reason?: string): void;
  destroy(): void;
  /** Whether splitInto works (nccl with ncclCommSplit, NCCL 2.18+). */
  readonly canSplit: boolean;
  /** ncclCommSplit: every rank of this group calls it; `child` (unconnected) receives the new group, null for color -1. */
  splitInto(child: NativeCommunicator | null, color: number, key: number, timeoutMs: number): Promise<void>;
}

// ---- the CUDA build's additions (typed wrappers in lib/cuda/device-tensor.ts) ----

/** Options of the AdamW kernel (torch.optim.AdamW's names). */
export interface NativeAdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  step: number;
  gradScale?: number;
}

/** Options of the SGD kernel (torch.optim.SGD's names). */
export interface NativeSgdOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  step: number;
  gradScale?: number;
}

/** The native DeviceTensor object. */
export interface NativeDeviceTensor {
  readonly dtype: DType;
  readonly length: number;
  readonly byteLength: number;
  readonly device: number;
  /** Elements from the start of the allocation (non-zero for views). */
  readonly offset: number;
  readonly released: boolean;
  upload(src: HostArray): NativeDeviceTensor;
  download(dst?: HostArray): HostArray;
  view(offset: number, length?: number): NativeDeviceTensor;
  fill(value: number | bigint): NativeDeviceTensor;
  copyFrom(src: NativeDeviceTensor): NativeDeviceTensor;
  /** Resolves (to undefined) once the copy is done; copies on a per-device copy thread. */
  uploadAsync(src: HostArray): Promise<void>;
  /** Resolves to `dst` (or a new array) once the copy is done. */
  downloadAsync(dst?: HostArray): Promise<HostArray>;
  fillAsync(value: number | bigint): Promise<void>;
  copyFromAsync(src: NativeDeviceTensor): Promise<void>;
  release(): void;
  toString(): string;
}

/** The native DeviceTensor class (only `alloc` creates instances). */
export interface NativeDeviceTensorClass {
  alloc(dtype: DType, length: number, device?: number): NativeDeviceTensor;
}

export interface NativeAdamWArgs extends NativeAdamWOptions {
  params: NativeDeviceTensor;
  grads: NativeDeviceTensor;
  expAvg: NativeDeviceTensor;
  expAvgSq: NativeDeviceTensor;
  halfParams?: NativeDeviceTensor;
}

export interface NativeSgdArgs extends NativeSgdOptions {
  params: NativeDeviceTensor;
  grads: NativeDeviceTensor;
  momentumBuffer?: NativeDeviceTensor;
  halfParams?: NativeDeviceTensor;
}

/**
 * The native `cudaKernels` object. Argument errors are thrown at the call; the
 * Promise settles once the device has run the work (rejected with its CUDA error).
 */
export interface NativeCudaKernels {
  accumulate(y: NativeDeviceTensor, x: NativeDeviceTensor, alpha?: number): Promise<void>;
  scale(x: NativeDeviceTensor, alpha: number): Promise<void>;
  cast(dst: NativeDeviceTensor, src: NativeDeviceTensor): Promise<void>;
  adamw(args: NativeAdamWArgs): Promise<void>;
  sgd(args: NativeSgdArgs): Promise<void>;
  sumOfSquares(x: NativeDeviceTensor, dtype?: 'f32' | 'f64'): Promise<number>;
  sumOfSquaresInto(out: NativeDeviceTensor, x: NativeDeviceTensor, accumulate?: boolean): Promise<void>;
  hasNonFinite(x: NativeDeviceTensor): Promise<boolean>;
  checkNonFiniteInto(flag: NativeDeviceTensor, x: NativeDeviceTensor, accumulate?: boolean): Promise<void>;
}

/** What the CUDA build adds to the addon's exports. */
export interface NativeCudaParts {
  DeviceTensor?: NativeDeviceTensorClass;
  cudaKernels?: NativeCudaKernels;
  /** Bytes of memory of a device (the current one when absent). */
  cudaTotalMemory?(device?: number): number;
}

// ---- the CPU kernels (typed wrappers in lib/kernels/host.ts) ----

/** A host tensor as the native kernels take it: the exact TypedArray range and its dtype. */
export interface NativeHostTensor {
  data: HostArray;
  dtype: DType;
}

export interface NativeHostAdamWArgs extends NativeAdamWOptions {
  params: NativeHostTensor;
  grads: NativeHostTensor;
  expAvg: NativeHostTensor;
  expAvgSq: NativeHostTensor;
  halfParams?: NativeHostTensor;
}

export interface NativeHostSgdArgs extends NativeSgdOptions {
  params: NativeHostTensor;
  grads: NativeHostTensor;
  momentumBuffer?: NativeHostTensor;
  halfParams?: NativeHostTensor;
}

/** The native `hostKernels` object (csrc/napi/host_kernels.cc): each call runs on libuv's pool. */
export interface NativeHostKernels {
  accumulate(y: NativeHostTensor, x: NativeHostTensor, alpha?: number): Promise<void>;
  scale(x: NativeHostTensor, alpha: number): Promise<void>;
  cast(dst: NativeHostTensor, src: NativeHostTensor): Promise<void>;
  adamw(args: NativeHostAdamWArgs): Promise<void>;
  sgd(args: NativeHostSgdArgs): Promise<void>;
  sumOfSquares(x: NativeHostTensor): Promise<number>;
  hasNonFinite(x: NativeHostTensor): Promise<boolean>;
  /** XXH64 (seed 0) of the bytes, as 16 lowercase hex digits. */
  checksum(bytes: ArrayBufferView): Promise<string>;
}

/** The raw addon surface; typed wrappers live in lib/comm and lib/cuda. */
export interface NativeAddon extends NativeCudaParts {
  /**
   * Makes the addon construct its errors through `cls` (the loader passes
   * MicsError): `new cls(message, code, {rank, group, op, peer, cause})`. Without
   * it the addon throws plain Errors carrying the same `code` and fields.
   */
  setErrorClass(cls: typeof MicsError): void;
  version(): string;
  buildInfo(): BuildInfo;
  capabilities(): Capabilities;
  /** The ncclConfig_t bytes passed to NCCL and the layout version they carry. */
  ncclConfig(): { layoutVersion: number; bytes: Uint8Array };
  Communicator: new (options: NativeCommunicatorOptions) => NativeCommunicator;
  /** Zero-filled host memory that same-node peers can map (lib/comm/host-memory.ts). */
  allocHost(byteLength: number): ArrayBuffer;
  /** allocHost regions alive in this process (for leak checks). */
  hostRegionCount(): number;
  /** CPU kernels; absent from addons built before csrc/napi/host_kernels.cc. */
  hostKernels?: NativeHostKernels;
}

/** Which build the loader picked and from where. */
export interface LoadedAddon {
  addon: NativeAddon;
  variant: 'cpu' | 'cuda';
  file: string;
}

const cudaBuildFile = path.join(packageRoot, 'build-cmake', 'Release', 'mics.node');

let loaded: LoadedAddon | undefined;

function cudaBuildIsCurrent(cpuFile: string | undefined): boolean {
  if (!fs.existsSync(cudaBuildFile)) return false;
  if (cpuFile === undefined) return true;
  return fs.statSync(cudaBuildFile).mtimeMs >= fs.statSync(cpuFile).mtimeMs;
}

function loadFile(file: string): NativeAddon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(file) as NativeAddon;
  // Once per environment (each worker loads its own instance of this module): from
  // now on every error the addon raises is constructed through MicsError.
  if (typeof addon.setErrorClass === 'function') addon.setErrorClass(MicsError);
  return addon;
}

/** Loads the addon once per process and returns it with where it came from. */
export function loadAddon(): LoadedAddon {
  if (loaded) return loaded;
  const requested = process.env.MICS_NATIVE_VARIANT;
  if (requested !== undefined && requested !== '' && requested !== 'cpu' && requested !== 'cuda') {
    throw invalidArgument(`MICS_NATIVE_VARIANT=${requested} is not valid: use 'cpu' or 'cuda'`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
  const cpuFile = (): string | undefined => {
    try {
      return nodeGypBuild.resolve(packageRoot);
    } catch {
      return undefined;
    }
  };
  if (requested === 'cuda' || (requested !== 'cpu' && cudaBuildIsCurrent(cpuFile()))) {
    if (!fs.existsSync(cudaBuildFile)) {
      throw new MicsError(
        `MICS_NATIVE_VARIANT=cuda but ${cudaBuildFile} does not exist: run \`npm run build:cmake\` first`,
        'MICS_UNAVAILABLE',
      );
    }
    const addon = loadFile(cudaBuildFile);
    loaded = { addon, variant: addon.buildInfo().cuda ? 'cuda' : 'cpu', file: cudaBuildFile };
    return loaded;
  }
  const file = cpuFile();
  if (file === undefined) {
    throw new MicsError(
      `no mics addon found under ${packageRoot} (build/Release, prebuilds/ or build-cmake/Release): ` +
        `no prebuild matches ${process.platform}-${process.arch} and none was compiled; ` +
        'npm 11 runs the install script that compiles it only when allowed: `npm install-scripts approve mics && npm rebuild mics` ' +
        '(needs a C++17 compiler, make and python3); in a checkout, `npm install` (or `npm run build:native`)',
      'MICS_UNAVAILABLE',
    );
  }
  const addon = loadFile(file);
  loaded = { addon, variant: addon.buildInfo().cuda ? 'cuda' : 'cpu', file };
  return loaded;
}

/** The addon itself (loaded on first use). */
export function native(): NativeAddon {
  return loadAddon().addon;
}
