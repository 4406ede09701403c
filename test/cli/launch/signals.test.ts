/** Signals to the launcher are forwarded with escalation, and nothing the ranks started survives. */
import * as fs from 'node:fs';
import { launch, readPids, requireBuilt, survivors, tempDir, until, worker } from './harness';

beforeAll(requireBuilt);

async function startWithGrandchildren(extraEnv: NodeJS.ProcessEnv = {}): Promise<{ l: ReturnType<typeof launch>; dir: string }> {
  const dir = tempDir('sig');
  const l = launch(['--standalone', '--nproc-per-node', '3', '--grace-period', '0.5', '--monitor-interval', '0.05', worker], {
    FIX_PID_DIR: dir,
    FIX_CHILD: '1',
    FIX_SLEEP_MS: '30000',
    ...extraEnv,
  });
  await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 3, 10000, 'all ranks to start');
  return { l, dir };
}

describe('signals to the launcher', () => {
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    '%s is forwarded; ranks and their children (which ignore it) are gone afterwards',
    async (signal) => {
      const { l, dir } = await startWithGrandchildren();
      const pids = readPids(dir);
      const ids = pids.flatMap((p) => [p.pid, p.childPid as number]);
      expect(survivors(ids).length).toBeGreaterThanOrEqual(6); // the check can see them while they run
      const t0 = Date.now();
      l.child.kill(signal);
      const r = await l.done;
      // Grace 0.5 s, then SIGKILL to the groups: well before the rank's 30 s sleep would end.
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(r.code).toBe(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[signal]);
      expect(r.stderr).toMatch(new RegExp(`node 0 received ${signal}`));
      expect(r.stderr).toMatch(new RegExp(`launcher  : node 0 received ${signal}`));
      // The ranks died of the forwarded signal itself.
      expect(r.stderr).toMatch(new RegExp(`Signal \\d+ \\(${signal}\\)`));
      expect(survivors(ids)).toEqual([]);
    },
  );

  it('a second SIGINT kills at once instead of waiting for the grace period', async () => {
    const dir = tempDir('sig2');
    const l = launch(['--standalone', '--nproc-per-node', '2', '--grace-period', '20', worker], {
      FIX_PID_DIR: dir,
      FIX_IGNORE_TERM: '1',
      FIX_SLEEP_MS: '30000',
    });
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2, 10000, 'all ranks to start');
    // SIGTERM is ignored by the ranks: only the escalation can end them.
    l.child.kill('SIGTERM');
    await until(() => /received SIGTERM/.test(l.stderr()), 5000, 'the launcher to react');
    const t0 = Date.now();
    l.child.kill('SIGTERM');
    const r = await l.done;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(128 + 15);
    expect(r.stderr).toMatch(/Signal 9 \(SIGKILL\)/);
    expect(survivors(readPids(dir).map((p) => p.pid))).toEqual([]);
  });

  it('children left behind by ranks that exited successfully are cleaned up too', async () => {
    const dir = tempDir('leftover');
    const t0 = Date.now();
    const l = launch(['--standalone', '--nproc-per-node', '2', '--grace-period', '0.5', worker], { FIX_PID_DIR: dir, FIX_CHILD: '1' });
    const r = await l.done;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(0);
    const ids = readPids(dir).flatMap((p) => [p.pid, p.childPid as number]);
    expect(ids).toHaveLength(4);
    expect(survivors(ids)).toEqual([]);
  });
});
