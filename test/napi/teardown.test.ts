/**
 * Tearing communicators down never takes the host process down and leaves nothing
 * behind: worker_threads terminated with ops in flight (in a loop), communicators
 * dropped without destroy(), and destroy() followed at once by process.exit().
 * Each runs in a child process, so that a crash fails the test instead of jest.
 */
import * as path from 'node:path';
import { shmSegmentsOf } from '../helpers/ranks';
import { repoRoot, runNode } from '../helpers/run-node';

const fixture = (name: string) => path.join(repoRoot, 'test', 'fixtures', 'napi', name);

function resultLine(stdout: string, tag: string): unknown {
  const m = new RegExp(`^${tag} (.*)$`, 'm').exec(stdout);
  if (!m) throw new Error(`no ${tag} line in:\n${stdout}`);
  return JSON.parse(m[1]);
}

describe('worker_threads terminated with ops in flight', () => {
  // Before: ~1 in 7 terminations aborted the whole process with
  // `terminate called after throwing an instance of 'Napi::Error'`.
  it('30 rounds of 3 workers (a 2-rank group and a 1-rank one), some idle, some just destroyed: the process survives and keeps no thread or descriptor', () => {
    const result = runNode([fixture('terminate-workers.js'), '30'], {}, 120000);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    const summary = resultLine(result.stdout, 'RESULT') as {
      iterations: number;
      opsSeen: number;
      before: { threads: number; fds: number };
      after: { threads: number; fds: number };
    };
    expect(summary.iterations).toBe(30);
    expect(summary.opsSeen).toBeGreaterThan(0);
    expect(summary.after).toEqual(summary.before);
  }, 150000);
});

describe('communicators dropped without destroy()', () => {
  it('are torn down when collected: their progress threads end', () => {
    const script = `
      const fs = require('fs');
      const { addon } = require('./dist/core/native').loadAddon();
      const threads = () => fs.readdirSync('/proc/self/task').length;
      (async () => {
        const before = threads();
        await (async () => {
          for (let i = 0; i < 5; i++) {
            const c = new addon.Communicator({ backend: 'cpu', rank: 0, size: 1, node: 0, host: '127.0.0.1', name: 'dropped' + i });
            await c.connect([c.address], 10000);
            await c.collective('barrier', null, null, 'u8', 'sum', 0, 10000);
          }
        })();
        const during = threads();
        for (let k = 0; k < 200 && threads() > before; k++) {
          global.gc();
          await new Promise((r) => setTimeout(r, 10));
        }
        console.log(JSON.stringify({ before, during, after: threads() }));
      })();`;
    const result = runNode(['--expose-gc', '-e', script]);
    expect(result.stderr).toBe('');
    const { before, during, after } = JSON.parse(result.stdout) as Record<string, number>;
    expect(during).toBeGreaterThanOrEqual(before + 1); // at least the last one is alive until collected
    expect(after).toBe(before);
  });
});

describe('destroy() and then process.exit() at once', () => {
  it('still unlinks the shared-memory segment (the exit waits for the teardown destroy() started)', () => {
    const result = runNode([fixture('destroy-then-exit.js')]);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    const segments = resultLine(result.stdout, 'SEGMENTS') as string[];
    expect(segments).toHaveLength(1); // it existed while connecting
    const pid = Number(/^mics-(\d+)-/.exec(segments[0])?.[1]);
    expect(shmSegmentsOf([pid])).toEqual([]);
  });
});
