/**
 * The preflight of scripts/gpu-check.sh reads what a GPU machine prints (nvidia-smi -q,
 * /proc/driver/nvidia/version, ldd, getconf) and decides whether the CUDA build can run
 * its checks there. The outputs below are in the formats those tools print.
 */
import {
  compareVersions, formatPreflight, parseDriverRelease, parseGlibcVersion, parseLdd, parseNvidiaSmiQuery, preflightVerdict,
  type PreflightFacts,
} from '../../lib/cuda/preflight';
import type { Capabilities } from '../../lib/core/native';

const smiH200 = `
==============NVSMI LOG==============

Timestamp                                 : Mon Dec  1 12:00:00 2025
Driver Version                            : 580.65.06
CUDA Version                              : 13.0

Attached GPUs                             : 1
GPU 00000000:19:00.0
    Product Name                          : NVIDIA H200
    Product Brand                         : NVIDIA
    Product Architecture                  : Hopper
    Display Mode                          : Disabled
    Persistence Mode                      : Enabled
    MIG Mode
        Current                           : Disabled
        Pending                           : Disabled
    Accounting Mode                       : Disabled
    FB Memory Usage
        Total                             : 143771 MiB
        Reserved                          : 551 MiB
        Used                              : 0 MiB
        Free                              : 143220 MiB
    BAR1 Memory Usage
        Total                             : 262144 MiB
        Used                              : 1 MiB
        Free                              : 262143 MiB
    Compute Mode                          : Default
    Utilization
        Gpu                               : 0 %
`;

const smiTwoT4 = `Driver Version                            : 550.54.15
CUDA Version                              : 12.4

Attached GPUs                             : 2
GPU 00000000:00:04.0
    Product Name                          : Tesla T4
    FB Memory Usage
        Total                             : 15360 MiB
    Compute Mode                          : Exclusive_Process
GPU 00000000:00:05.0
    Product Name                          : Tesla T4
    FB Memory Usage
        Total                             : 15360 MiB
    Compute Mode                          : Default
`;

const lddOk = `	linux-vdso.so.1 (0x00007ffd1e5f0000)
	libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2a3c000000)
	libgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f2a3bfe0000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2a3bc00000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f2a3c2f0000)
`;

const lddOldGlibc = `./build-cmake/Release/mics.node: /lib/x86_64-linux-gnu/libc.so.6: version \`GLIBC_2.34' not found (required by ./build-cmake/Release/mics.node)
./build-cmake/Release/mics.node: /lib/x86_64-linux-gnu/libc.so.6: version \`GLIBC_2.33' not found (required by ./build-cmake/Release/mics.node)
	linux-vdso.so.1 (0x00007ffd1e5f0000)
	libgcc_s.so.1 => not found
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2a3bc00000)
`;

function caps(over: { cuda?: Partial<Capabilities['cuda']>; nccl?: Partial<Capabilities['nccl']> } = {}): Capabilities {
  return {
    cpu: { available: true },
    nccl: { found: true, searched: [], path: '/site-packages/nvidia/nccl/lib/libnccl.so.2', version: '2.27.3', versionCode: 22703, split: true, finalize: true, ...over.nccl },
    cuda: { compiled: true, deviceCount: 1, driverVersion: 13000, runtimeVersion: 13000, driverRelease: '580.65.06', driverTooOld: false, ...over.cuda },
  };
}

describe('preflight parsers', () => {
  it('reads the driver, the CUDA version and every GPU from nvidia-smi -q', () => {
    expect(parseNvidiaSmiQuery(smiH200)).toEqual({
      driverVersion: '580.65.06',
      cudaVersion: '13.0',
      gpus: [{ busId: '00000000:19:00.0', name: 'NVIDIA H200', architecture: 'Hopper', computeMode: 'Default', memoryTotal: '143771 MiB', migMode: 'Disabled' }],
    });
    const t4 = parseNvidiaSmiQuery(smiTwoT4);
    expect(t4.gpus.map((g) => [g.busId, g.name, g.computeMode, g.memoryTotal])).toEqual([
      ['00000000:00:04.0', 'Tesla T4', 'Exclusive_Process', '15360 MiB'],
      ['00000000:00:05.0', 'Tesla T4', 'Default', '15360 MiB'],
    ]);
    expect(parseNvidiaSmiQuery('')).toEqual({ gpus: [] });
  });

  it("reads the kernel module's version from /proc/driver/nvidia/version (proprietary and open modules)", () => {
    expect(parseDriverRelease('NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0')).toBe('550.54.15');
    expect(parseDriverRelease('NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16-I3-B03-4-3)')).toBe('580.65.06');
    expect(parseDriverRelease('GCC version: 12')).toBeUndefined();
  });

  it('reads ldd: resolved, missing libraries and missing symbol versions', () => {
    expect(parseLdd(lddOk)).toEqual({
      libraries: [
        { name: 'linux-vdso.so.1' },
        { name: 'libm.so.6', path: '/lib/x86_64-linux-gnu/libm.so.6' },
        { name: 'libgcc_s.so.1', path: '/lib/x86_64-linux-gnu/libgcc_s.so.1' },
        { name: 'libc.so.6', path: '/lib/x86_64-linux-gnu/libc.so.6' },
        { name: '/lib64/ld-linux-x86-64.so.2' },
      ],
      missing: [],
      versionErrors: [],
    });
    const old = parseLdd(lddOldGlibc);
    expect(old.missing).toEqual(['libgcc_s.so.1']);
    expect(old.versionErrors).toEqual(['GLIBC_2.34', 'GLIBC_2.33']);
  });

  it('reads the glibc version from getconf or ldd --version, and compares versions numerically', () => {
    expect(parseGlibcVersion('glibc 2.35\n')).toBe('2.35');
    expect(parseGlibcVersion('ldd (Debian GLIBC 2.36-9+deb12u14) 2.36\nCopyright (C) 2022')).toBe('2.36');
    expect(parseGlibcVersion('ldd (GNU libc) 2.17\n')).toBe('2.17');
    expect(compareVersions('2.34', '2.34')).toBe(0);
    expect(compareVersions('2.9', '2.34')).toBe(-1);
    expect(compareVersions('2.35.1', '2.35')).toBe(1);
  });
});

describe('preflight verdict', () => {
  const good: PreflightFacts = { smi: parseNvidiaSmiQuery(smiH200), glibc: '2.35', ldd: parseLdd(lddOk), capabilities: caps() };

  it('lets the checks run on a good machine, and says so', () => {
    const v = preflightVerdict(good);
    expect(v).toMatchObject({ ok: true, blockers: [], sharedGpuOk: true });
    const md = formatPreflight(good, v);
    expect(md).toContain('GPU 00000000:19:00.0: NVIDIA H200 (Hopper), 143771 MiB, compute mode Default, MIG Disabled');
    expect(md).toContain('NCCL: 2.27.3 at /site-packages/nvidia/nccl/lib/libnccl.so.2');
    expect(md).toContain('**Verdict: the GPU checks can run here.**');
  });

  it('stops on a driver too old for the runtime, naming both versions and the driver needed', () => {
    const old = { ...good, capabilities: caps({ cuda: { driverVersion: 12040, driverRelease: '550.54.15', deviceCount: 0, driverTooOld: true } }) };
    const v = preflightVerdict(old);
    expect(v.ok).toBe(false);
    expect(v.blockers).toEqual([
      "CUDA driver too old: the NVIDIA driver 550.54.15 supports CUDA 12.4, but this build's CUDA runtime is 13.0 and needs a driver for CUDA 13.0 or newer (NVIDIA 580 or newer): update the driver, or use a build made with an older CUDA toolkit",
    ]);
    expect(formatPreflight(old, v)).toContain('- BLOCKER: CUDA driver too old');
  });

  it('stops on an old glibc, missing libraries, no GPU, no NCCL, a CPU build or an addon that does not load', () => {
    const bad = preflightVerdict({ smi: { gpus: [] }, smiError: 'nvidia-smi: spawnSync nvidia-smi ENOENT', glibc: '2.31', ldd: parseLdd(lddOldGlibc), capabilities: caps({ nccl: { found: false, error: 'libnccl.so.2 not found', split: undefined } }) });
    expect(bad.ok).toBe(false);
    expect(bad.blockers).toEqual([
      'no GPU: nvidia-smi: spawnSync nvidia-smi ENOENT',
      'glibc 2.31 is older than 2.34, the oldest the addon is built for',
      'the addon needs libraries this machine lacks: libgcc_s.so.1',
      'the addon needs symbol versions this machine lacks: GLIBC_2.34, GLIBC_2.33',
      'NCCL not found: libnccl.so.2 not found (set MICS_NCCL_LIBRARY)',
    ]);
    expect(preflightVerdict({ ...good, capabilities: caps({ cuda: { compiled: false, runtimeVersion: 0 } }) }).blockers).toEqual([
      expect.stringMatching(/the addon loaded is the CPU build/),
    ]);
    expect(preflightVerdict({ ...good, capabilities: undefined, addonError: 'GLIBC_2.34 not found' }).blockers).toEqual([
      'the addon did not load: GLIBC_2.34 not found',
    ]);
    // Without the addon, nvidia-smi's CUDA version still tells a too-old driver.
    expect(preflightVerdict({ smi: parseNvidiaSmiQuery(smiTwoT4), capabilities: undefined, addonError: 'x' }).blockers).toContain(
      'the driver supports CUDA 12.4; the CUDA build (CUDA 13) needs NVIDIA 580 or newer',
    );
    expect(preflightVerdict({ ...good, capabilities: caps({ nccl: { version: '2.9.9', versionCode: 2909 } }) }).blockers).toEqual([
      expect.stringMatching(/NCCL 2\.9\.9 .* is older than 2\.10/),
    ]);
  });

  it('notes a compute mode other than Default: the one-GPU multi-rank smoke cannot run', () => {
    const v = preflightVerdict({ ...good, smi: parseNvidiaSmiQuery(smiTwoT4), capabilities: caps({ cuda: { driverVersion: 13000 } }) });
    expect(v.ok).toBe(true);
    expect(v.sharedGpuOk).toBe(false);
    expect(v.notes).toContain(
      'compute mode Exclusive_Process on 00000000:00:04.0: several ranks on one GPU need Default (nvidia-smi -c DEFAULT); the one-GPU multi-rank smoke is skipped',
    );
  });
});
