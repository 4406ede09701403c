/** The addon loads, describes its build and probes this machine truthfully. */
import * as fs from 'node:fs';
import { loadAddon } from '../lib/core/native';
import { packageVersion } from '../lib/core/version';
import { runNode } from './helpers/run-node';

describe('native addon', () => {
  const { addon, variant, file } = loadAddon();

  it('reports the package version and how it was built', () => {
    expect(addon.version()).toBe(packageVersion);
    const build = addon.buildInfo();
    expect(['node-gyp', 'cmake-js']).toContain(build.buildSystem);
    expect(build.compiler).toMatch(/^(g\+\+|clang) \d+/);
    expect(variant).toBe(build.cuda ? 'cuda' : 'cpu');
    expect(fs.existsSync(file)).toBe(true);
  });

  it('always has the CPU backend', () => {
    expect(addon.capabilities().cpu.available).toBe(true);
  });

  it('reports CUDA devices or the reason there are none', () => {
    const cuda = addon.capabilities().cuda;
    expect(cuda.compiled).toBe(addon.buildInfo().cuda);
    if (cuda.deviceCount === 0) expect(cuda.reason).toEqual(expect.any(String));
    if (!cuda.compiled) expect(cuda.reason).toMatch(/no CUDA parts/);
  });

  it('loads in a process whose library path has no NCCL', () => {
    const result = runNode(
      ['-e', "const {loadAddon}=require('./dist/core/native'); const c=loadAddon().addon.capabilities(); console.log(JSON.stringify(c.nccl))"],
      { LD_LIBRARY_PATH: '/nonexistent', MICS_NCCL_LIBRARY: '', NCCL_HOME: '' },
    );
    expect(result.status).toBe(0);
    const nccl = JSON.parse(result.stdout) as { found: boolean; searched: string[]; error?: string };
    if (!nccl.found) {
      expect(nccl.error).toMatch(/libnccl\.so\.2 not found/);
      expect(nccl.searched).toContain('libnccl.so.2');
    }
  });

  it('rejects an unknown MICS_NATIVE_VARIANT by name', () => {
    const result = runNode(['-e', "require('./dist/core/native').loadAddon()"], { MICS_NATIVE_VARIANT: 'gpu' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/MICS_NATIVE_VARIANT=gpu is not valid: use 'cpu' or 'cuda'/);
  });
});
