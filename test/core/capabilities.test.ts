/**
 * Which backends are usable, and the driver/runtime decision: the CMake build links
 * CUDA's static runtime, which runs only on a driver of its CUDA major version or newer
 * (580+ for CUDA 13). A too-old driver is named with both versions, never a silent skip.
 */
import { backendStatuses, cudaDriverCheck, installationProblems, MINIMUM_DRIVER_BRANCH } from '../../lib/core/capabilities';
import type { Capabilities } from '../../lib/core/native';

function caps(cuda: Partial<Capabilities['cuda']>, nccl: Partial<Capabilities['nccl']> = {}): Capabilities {
  return {
    cpu: { available: true },
    nccl: { found: true, searched: ['libnccl.so.2'], path: '/x/libnccl.so.2', version: '2.27.3', versionCode: 22703, ...nccl },
    cuda: { compiled: true, deviceCount: 1, driverVersion: 13000, runtimeVersion: 13000, ...cuda },
  };
}

describe('cudaDriverCheck', () => {
  it('needs a driver of the runtime major version or newer (minor version compatibility)', () => {
    expect(cudaDriverCheck({ runtimeVersion: 13000, driverVersion: 13000, driverRelease: '580.65.06' })).toEqual({
      status: 'ok',
      message: "the NVIDIA driver 580.65.06 supports CUDA 13.0; this build's CUDA runtime is 13.0",
      minimumDriver: 580,
    });
    expect(cudaDriverCheck({ runtimeVersion: 13010, driverVersion: 13000 }).status).toBe('ok'); // 13.1 runtime, 13.0 driver
    expect(cudaDriverCheck({ runtimeVersion: 12040, driverVersion: 13000 }).status).toBe('ok'); // newer driver
    expect(cudaDriverCheck({ runtimeVersion: 12080, driverVersion: 12020 }).status).toBe('ok');
  });

  it('refuses a driver for an older CUDA major version, naming both versions and the driver needed', () => {
    expect(cudaDriverCheck({ runtimeVersion: 13000, driverVersion: 12080, driverRelease: '570.86.15' })).toEqual({
      status: 'too-old',
      message:
        "CUDA driver too old: the NVIDIA driver 570.86.15 supports CUDA 12.8, but this build's CUDA runtime is 13.0 and needs a " +
        'driver for CUDA 13.0 or newer (NVIDIA 580 or newer): update the driver, or use a build made with an older CUDA toolkit',
      minimumDriver: 580,
    });
    expect(cudaDriverCheck({ runtimeVersion: 13000, driverVersion: 12040 }).message).toMatch(
      /^CUDA driver too old: the NVIDIA driver supports CUDA 12\.4, but this build's CUDA runtime is 13\.0/,
    );
    expect(cudaDriverCheck({ runtimeVersion: 12000, driverVersion: 11080 }).message).toMatch(/needs a driver for CUDA 12\.0 or newer \(NVIDIA 525 or newer\)/);
    expect(cudaDriverCheck({ runtimeVersion: 14000, driverVersion: 13000 }).message).toMatch(/needs a driver for CUDA 14\.0 or newer: update/);
  });

  it('tells no driver and no CUDA parts apart', () => {
    expect(cudaDriverCheck({ runtimeVersion: 13000, driverVersion: 0 })).toEqual({
      status: 'no-driver',
      message: "no NVIDIA driver; this build's CUDA runtime is 13.0 (needs NVIDIA 580 or newer)",
      minimumDriver: 580,
    });
    expect(cudaDriverCheck({ runtimeVersion: 0, driverVersion: 12040 }).status).toBe('no-cuda');
    expect(MINIMUM_DRIVER_BRANCH[13]).toBe(580);
  });
});

describe('backendStatuses and installationProblems', () => {
  it('says nccl is usable with NCCL, the CUDA parts and a device', () => {
    expect(backendStatuses(caps({}))[1]).toEqual({ name: 'nccl', usable: true, detail: 'NCCL 2.27.3 at /x/libnccl.so.2, 1 CUDA device(s)' });
    expect(installationProblems(caps({}), true)).toEqual([]);
  });

  it('names a too-old driver as the reason nccl is unusable, and as a problem of the installation', () => {
    const old = caps({ driverVersion: 12040, deviceCount: 0, reason: 'CUDA driver too old: ...', driverRelease: '550.54.15' });
    const nccl = backendStatuses(old)[1];
    expect(nccl.usable).toBe(false);
    expect(nccl.detail).toMatch(/^CUDA driver too old: the NVIDIA driver 550\.54\.15 supports CUDA 12\.4/);
    expect(installationProblems(old)).toEqual([expect.stringMatching(/^CUDA driver too old: .*NVIDIA 580 or newer/)]);
  });

  it('treats a machine without a driver as fine, unless MICS_REQUIRE_GPU=1', () => {
    const cpuOnly = caps({ driverVersion: 0, deviceCount: 0, reason: 'no CUDA driver' }, { found: false, error: 'libnccl.so.2 not found' });
    expect(installationProblems(cpuOnly)).toEqual([]);
    expect(installationProblems(cpuOnly, true)).toEqual([
      expect.stringMatching(/^MICS_REQUIRE_GPU=1 but the nccl backend is not usable: libnccl\.so\.2 not found .*; no CUDA device: no CUDA driver$/),
    ]);
    expect(installationProblems(caps({ compiled: false, runtimeVersion: 0, driverVersion: 0 }), true)).toEqual([
      expect.stringMatching(/no CUDA parts/),
    ]);
  });
});
