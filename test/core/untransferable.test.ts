/**
 * Buffers an op uses on another thread stay attached until it ends: transferring
 * them mid-op (structuredClone or postMessage with `transfer`) copies them instead of
 * freeing their memory under the op, which used to crash the process (SIGSEGV).
 * Each case runs in its own process, so that a crash fails the test instead of jest.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/ranks';

const script = path.join(repoRoot, 'test', 'fixtures', 'core', 'transfer-in-flight.js');

describe('transferring the buffers of an op in flight', () => {
  it.each([
    ['allReduce (progress thread)', 'allReduce', 3],
    ['allGather (progress thread)', 'allGather', 3],
    ['hostKernels.scale (libuv pool)', 'scale', 6],
  ])('%s: the op completes on its own memory; the transfer gets a copy', async (_name, which, value) => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', script, which], { timeout: 60000 });
    const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
    expect(JSON.parse(line!.slice('RESULT '.length))).toEqual({
      which,
      cloneBytes: (1 << 22) * 4,
      inputAttached: true,
      outputAttached: true,
      first: value,
      last: value,
      unusedDetaches: true,
    });
  }, 90000);
});
