/**
 * The NCCL loader against a real shared library: we compile a tiny stand-in
 * libnccl.so.2 that exports NCCL's C symbols (ncclGetVersion answers 2.23.4) and
 * check that dlopen finds it where each search rule says, and reports the version.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runNode } from '../helpers/run-node';

const symbols = [
  'ncclGetUniqueId', 'ncclCommInitRank', 'ncclCommInitRankConfig', 'ncclCommSplit', 'ncclAllGather',
  'ncclReduceScatter', 'ncclAllReduce', 'ncclBroadcast', 'ncclGroupStart', 'ncclGroupEnd',
  'ncclCommAbort', 'ncclCommDestroy', 'ncclCommGetAsyncError',
];

function buildFakeNccl(dir: string, withVersion = true): string {
  const source = [
    withVersion ? 'int ncclGetVersion(int* v) { *v = 22304; return 0; }' : '',
    'const char* ncclGetErrorString(int r) { return "fake"; }',
    ...symbols.map((s) => `int ${s}(void) { return 3; }`),
  ].join('\n');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'libnccl.so.2');
  fs.writeFileSync(path.join(dir, 'fake.c'), source);
  execFileSync('cc', ['-shared', '-fPIC', '-o', file, path.join(dir, 'fake.c')]);
  return file;
}

interface NcclCaps {
  found: boolean;
  path?: string;
  version?: string;
  error?: string;
  searched: string[];
}

function probe(env: NodeJS.ProcessEnv): NcclCaps {
  const result = runNode(
    ['-e', "console.log(JSON.stringify(require('./dist/core/native').loadAddon().addon.capabilities().nccl))"],
    { MICS_NCCL_LIBRARY: '', NCCL_HOME: '', LD_LIBRARY_PATH: '', ...env },
  );
  if (result.status !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout) as NcclCaps;
}

describe('NCCL loader', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-nccl-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('loads the library named by MICS_NCCL_LIBRARY and decodes its version', () => {
    const lib = buildFakeNccl(path.join(tmp, 'explicit'));
    const nccl = probe({ MICS_NCCL_LIBRARY: lib });
    expect(nccl).toMatchObject({ found: true, version: '2.23.4' });
    expect(nccl.path).toBe(lib);
  });

  it('finds it through LD_LIBRARY_PATH and through NCCL_HOME/lib', () => {
    const viaLd = buildFakeNccl(path.join(tmp, 'ld'));
    expect(probe({ LD_LIBRARY_PATH: path.dirname(viaLd) })).toMatchObject({ found: true, path: viaLd });
    const home = path.join(tmp, 'home');
    const viaHome = buildFakeNccl(path.join(home, 'lib'));
    expect(probe({ NCCL_HOME: home })).toMatchObject({ found: true, path: viaHome });
  });

  it('refuses a library without ncclGetVersion, naming the missing symbol', () => {
    const lib = buildFakeNccl(path.join(tmp, 'broken'), false);
    const nccl = probe({ MICS_NCCL_LIBRARY: lib });
    expect(nccl.found).toBe(false);
    expect(nccl.error).toBe(`${lib} is missing required symbol ncclGetVersion`);
  });

  it('lists every place it searched when nothing is found', () => {
    const nccl = probe({ NCCL_HOME: '/opt/nccl-home', CUDA_HOME: '/opt/cuda-home' });
    if (nccl.found) {
      console.log(`skipped: a real NCCL at ${nccl.path} answers before the search list is exhausted`);
      return;
    }
    expect(nccl.error).toMatch(/^libnccl\.so\.2 not found/);
    expect(nccl.searched).toEqual(
      expect.arrayContaining([
        'libnccl.so.2',
        '/opt/nccl-home/lib/libnccl.so.2',
        '/opt/cuda-home/lib64/libnccl.so.2',
        '/usr/local/cuda/lib64/libnccl.so.2',
      ]),
    );
    expect(nccl.searched.some((p) => p.includes('nvidia/nccl/lib/libnccl.so.2'))).toBe(true);
  });
});
