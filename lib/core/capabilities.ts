/** Which backends the loaded addon can use on this machine, and why not. */
import type { Capabilities } from './native';

/** One backend and whether it is usable on this machine, with the reason when not. */
export interface BackendStatus {
  name: 'cpu' | 'nccl';
  usable: boolean;
  detail: string;
}

/**
 * The oldest NVIDIA driver branch that supports each CUDA major version (NVIDIA's
 * CUDA release notes, "minor version compatibility"): a driver runs every runtime of
 * the CUDA major version it supports, and none of a newer one.
 */
export const MINIMUM_DRIVER_BRANCH: Readonly<Record<number, number>> = { 11: 450, 12: 525, 13: 580 };

/** "12.4" for 12040 (the encoding of cudaDriverGetVersion / cudaRuntimeGetVersion). */
export function cudaVersionText(code: number): string {
  return `${Math.floor(code / 1000)}.${Math.floor((code % 1000) / 10)}`;
}

/** What {@link cudaDriverCheck} decided. */
export interface DriverCheck {
  /**
   * 'ok': the driver runs this build's runtime; 'too-old': it supports an older CUDA;
   * 'no-driver': no NVIDIA driver; 'no-cuda': this build has no CUDA parts.
   */
  status: 'ok' | 'too-old' | 'no-driver' | 'no-cuda';
  /** One line naming the versions (and, when too old, the driver needed). */
  message: string;
  /** The driver branch the runtime needs ("580"), when known. */
  minimumDriver?: number;
}

/**
 * Whether the installed driver can run the CUDA runtime this build links (static
 * cudart: the CMake build needs a driver of the runtime's CUDA major version or
 * newer, e.g. 580+ for CUDA 13). Pure: the numbers come from `capabilities().cuda`.
 * The addon words a too-old driver the same way (csrc/cuda/device_probe.cc).
 */
export function cudaDriverCheck(cuda: { runtimeVersion: number; driverVersion: number; driverRelease?: string }): DriverCheck {
  const major = Math.floor(cuda.runtimeVersion / 1000);
  const minimumDriver = MINIMUM_DRIVER_BRANCH[major];
  if (cuda.runtimeVersion <= 0) return { status: 'no-cuda', message: 'this build has no CUDA runtime' };
  const runtime = cudaVersionText(cuda.runtimeVersion);
  const driverName = `the NVIDIA driver${cuda.driverRelease ? ` ${cuda.driverRelease}` : ''}`;
  if (cuda.driverVersion <= 0) {
    return {
      status: 'no-driver',
      message: `no NVIDIA driver; this build's CUDA runtime is ${runtime}` + (minimumDriver ? ` (needs NVIDIA ${minimumDriver} or newer)` : ''),
      minimumDriver,
    };
  }
  const driver = cudaVersionText(cuda.driverVersion);
  if (Math.floor(cuda.driverVersion / 1000) < major) {
    return {
      status: 'too-old',
      message:
        `CUDA driver too old: ${driverName} supports CUDA ${driver}, but this build's CUDA runtime is ${runtime} ` +
        `and needs a driver for CUDA ${major}.0 or newer` +
        (minimumDriver ? ` (NVIDIA ${minimumDriver} or newer)` : '') +
        ': update the driver, or use a build made with an older CUDA toolkit',
      minimumDriver,
    };
  }
  return { status: 'ok', message: `${driverName} supports CUDA ${driver}; this build's CUDA runtime is ${runtime}`, minimumDriver };
}

/** Decides which backends are usable from the probed capabilities. */
export function backendStatuses(caps: Capabilities): BackendStatus[] {
  const cpu: BackendStatus = {
    name: 'cpu',
    usable: caps.cpu.available,
    detail: 'shared memory within a node, TCP between nodes',
  };
  const reasons: string[] = [];
  if (!caps.nccl.found) {
    reasons.push(`${caps.nccl.error ?? 'libnccl.so.2 not found'} (searched: ${caps.nccl.searched.join(', ')})`);
  }
  if (!caps.cuda.compiled) reasons.push(`no CUDA parts: ${caps.cuda.reason ?? 'not compiled'}`);
  else if (cudaDriverCheck(caps.cuda).status === 'too-old') reasons.push(cudaDriverCheck(caps.cuda).message);
  else if (caps.cuda.deviceCount === 0) reasons.push(`no CUDA device: ${caps.cuda.reason ?? 'none found'}`);
  const nccl: BackendStatus =
    reasons.length === 0
      ? {
          name: 'nccl',
          usable: true,
          detail: `NCCL ${caps.nccl.version} at ${caps.nccl.path}, ${caps.cuda.deviceCount} CUDA device(s)`,
        }
      : { name: 'nccl', usable: false, detail: reasons.join('; ') };
  return [cpu, nccl];
}

/**
 * Problems that make this installation unable to do what it was built for, one line
 * each: a CUDA build next to an NVIDIA driver too old for its runtime. `mics info`
 * prints them and exits 1; with `requireGpu` (MICS_REQUIRE_GPU=1) a missing GPU, driver
 * or NCCL is one too. A CPU machine without a driver is not a problem otherwise.
 */
export function installationProblems(caps: Capabilities, requireGpu = false): string[] {
  const problems: string[] = [];
  const driver = cudaDriverCheck(caps.cuda);
  if (caps.cuda.compiled && driver.status === 'too-old') {
    problems.push(driver.message);
  } else if (requireGpu) {
    const nccl = backendStatuses(caps).find((b) => b.name === 'nccl');
    if (nccl && !nccl.usable) problems.push(`MICS_REQUIRE_GPU=1 but the nccl backend is not usable: ${nccl.detail}`);
  }
  return problems;
}
