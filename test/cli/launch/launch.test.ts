/** mics-launch with real processes: ranks, environment, multi-node rendezvous, failures, restarts. */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixtures, freePort, launch, rankEnvs, readPids, requireBuilt, runLaunch, survivors, tempDir, until, worker } from './harness';

beforeAll(requireBuilt);

/** Short grace periods keep the suite fast; the default (30 s) is tested in the options tests. */
const FAST = ['--grace-period', '0.5', '--monitor-interval', '0.05'];

describe('one node', () => {
  it('starts 4 ranks with unique ranks 0..3 and the full environment', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '4', ...FAST, worker, 'a', '--flag'], { OMP_NUM_THREADS: '' });
    expect(r.code).toBe(0);
    const envs = rankEnvs(r.stdout);
    expect(envs.map((e) => e.RANK)).toEqual(['0', '1', '2', '3']);
    const runId = envs[0].TORCHELASTIC_RUN_ID;
    expect(runId).toMatch(/^mics-[0-9a-f]{8}$/);
    for (const [i, e] of envs.entries()) {
      expect(e).toMatchObject({
        LOCAL_RANK: String(i),
        WORLD_SIZE: '4',
        LOCAL_WORLD_SIZE: '4',
        GROUP_RANK: '0',
        GROUP_WORLD_SIZE: '1',
        ROLE_RANK: String(i),
        ROLE_WORLD_SIZE: '4',
        MASTER_ADDR: '127.0.0.1',
        TORCHELASTIC_RESTART_COUNT: '0',
        TORCHELASTIC_MAX_RESTARTS: '0',
        TORCHELASTIC_RUN_ID: runId,
        MICS_STORE_HOSTED: '1',
        OMP_NUM_THREADS: '1',
        MICS_AGENT_LOCAL_RANK: String(i),
        TOKEN_HEX64: true,
        ARGS: ['a', '--flag'],
      });
      // --standalone: a free port, the same for every rank, never the shared default
      expect(e.MASTER_PORT).toBe(envs[0].MASTER_PORT);
    }
    expect(Number(envs[0].MASTER_PORT)).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/finished: 4 rank\(s\) on node 0, 4 in total on 1 node\(s\), exit code 0/);
  });

  it('removes the error-record directories that killed launchers left behind (their pid is gone), and its own', async () => {
    const tmp = tempDir('orphans');
    const orphan = path.join(tmp, 'mics-launch-errors-999999999-abc123');
    fs.mkdirSync(orphan);
    const r = await runLaunch(['--standalone', '--nproc-per-node', '2', ...FAST, worker], { TMPDIR: tmp });
    expect(r.code).toBe(0);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('mics-launch-errors-'))).toEqual([]);
  });

  it('keeps OMP_NUM_THREADS when the user set it, and never prints the token', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '2', ...FAST, worker], { OMP_NUM_THREADS: '7' });
    expect(r.code).toBe(0);
    expect(rankEnvs(r.stdout).map((e) => e.OMP_NUM_THREADS)).toEqual(['7', '7']);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/[0-9a-f]{64}/);
  });

  it('runs a TypeScript script through the loader', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '2', ...FAST, path.join(fixtures, 'worker.ts')]);
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\[rank 0\] TS rank=0 world=2$/m);
    expect(r.stdout).toMatch(/^\[rank 1\] TS rank=1 world=2$/m);
  });

  it('runs any executable with --no-node', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '2', ...FAST, '--no-node', 'sh', '-c', 'echo "R=$RANK of $WORLD_SIZE"']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\[rank 0\] R=0 of 2$/m);
    expect(r.stdout).toMatch(/^\[rank 1\] R=1 of 2$/m);
  });

  it('writes one file per rank under --log-dir instead of the console, and both with --tee', async () => {
    const dir = tempDir('logs');
    const r = await runLaunch(['--standalone', '--nproc-per-node', '2', ...FAST, '--run-id', 'logjob', '--log-dir', dir, worker]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/ENV/);
    for (const rank of [0, 1]) {
      const out = fs.readFileSync(path.join(dir, 'logjob', 'attempt_0', String(rank), 'stdout.log'), 'utf8');
      expect(out).toMatch(new RegExp(`^ENV .*"RANK":"${rank}"`));
    }
    const dir2 = tempDir('tee');
    const t = await runLaunch(['--standalone', '--nproc-per-node', '2', ...FAST, '--run-id', 'teejob', '--log-dir', dir2, '--tee', '1', worker]);
    expect(t.code).toBe(0);
    expect(rankEnvs(t.stdout)).toHaveLength(2);
    expect(fs.readFileSync(path.join(dir2, 'teejob', 'attempt_0', '1', 'stdout.log'), 'utf8')).toMatch(/^ENV /);
  });
});

describe('emulated and real multi-node on one machine', () => {
  it('--emulate-nodes 2 splits 4 ranks into 2 nodes of 2, node-major', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '4', '--emulate-nodes', '2', ...FAST, worker]);
    expect(r.code).toBe(0);
    const envs = rankEnvs(r.stdout);
    expect(envs.map((e) => [e.RANK, e.GROUP_RANK, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE, e.GROUP_WORLD_SIZE, e.MICS_AGENT_LOCAL_RANK])).toEqual([
      ['0', '0', '0', '2', '2', '0'],
      ['1', '0', '1', '2', '2', '1'],
      ['2', '1', '0', '2', '2', '2'],
      ['3', '1', '1', '2', '2', '3'],
    ]);
  });

  it('two launchers (--nnodes 2, node rank 0 and 1) on loopback agree on node-major ranks', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const common = ['--nnodes', '2', '--nproc-per-node', '2', '--master-port', port, '--run-id', 'two-nodes', ...FAST];
    // Node 1 first: it must wait for node 0's store rather than fail.
    const n1 = launch([...common, '--node-rank', '1', worker], { MICS_STORE_TOKEN: token });
    await new Promise((r) => setTimeout(r, 300));
    const n0 = launch([...common, '--node-rank', '0', worker], { MICS_STORE_TOKEN: token });
    const [r0, r1] = await Promise.all([n0.done, n1.done]);
    expect([r0.code, r1.code]).toEqual([0, 0]);
    const e0 = rankEnvs(r0.stdout);
    const e1 = rankEnvs(r1.stdout);
    expect(e0.map((e) => [e.RANK, e.LOCAL_RANK, e.GROUP_RANK])).toEqual([['0', '0', '0'], ['1', '1', '0']]);
    expect(e1.map((e) => [e.RANK, e.LOCAL_RANK, e.GROUP_RANK])).toEqual([['2', '0', '1'], ['3', '1', '1']]);
    for (const e of [...e0, ...e1]) {
      expect(e).toMatchObject({ WORLD_SIZE: '4', LOCAL_WORLD_SIZE: '2', GROUP_WORLD_SIZE: '2', MASTER_PORT: port, TORCHELASTIC_RUN_ID: 'two-nodes' });
    }
  });

  it('two launchers that each emulate 2 nodes make 4 groups, node-major', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const common = ['--nnodes', '2', '--nproc-per-node', '2', '--emulate-nodes', '2', '--master-port', port, '--run-id', 'em', ...FAST];
    const [r0, r1] = await Promise.all([
      runLaunch([...common, '--node-rank', '0', worker], { MICS_STORE_TOKEN: token }),
      runLaunch([...common, '--node-rank', '1', worker], { MICS_STORE_TOKEN: token }),
    ]);
    expect([r0.code, r1.code]).toEqual([0, 0]);
    const all = [...rankEnvs(r0.stdout), ...rankEnvs(r1.stdout)];
    expect(all.map((e) => [e.RANK, e.GROUP_RANK, e.LOCAL_RANK, e.GROUP_WORLD_SIZE])).toEqual([
      ['0', '0', '0', '4'],
      ['1', '1', '0', '4'],
      ['2', '2', '0', '4'],
      ['3', '3', '0', '4'],
    ]);
  });

  it('a node that never arrives ends the wait with a clear error', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const r = await runLaunch(['--nnodes', '2', '--node-rank', '0', '--master-port', port, '--rdzv-timeout', '1', '--nproc-per-node', '1', worker], {
      MICS_STORE_TOKEN: token,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rendezvous timed out after 1 s: node\(s\) 1 of 2 never joined/);
    expect(r.stdout).not.toMatch(/ENV/);
  });

  it('nodes started with different run ids or node counts are refused with the difference named', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const base = ['--nproc-per-node', '1', '--master-port', port, '--rdzv-timeout', '5', ...FAST];
    const n0 = launch([...base, '--nnodes', '2', '--node-rank', '0', '--run-id', 'job-a', worker], { MICS_STORE_TOKEN: token });
    const r1 = await runLaunch([...base, '--nnodes', '2', '--node-rank', '1', '--run-id', 'job-b', worker], { MICS_STORE_TOKEN: token });
    n0.child.kill('SIGTERM');
    await n0.done;
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/node 1 was started with run id 'job-b' and --nnodes 2, but node 0 .* runs run id 'job-a'/);
  });

  it('a multi-node job needs a shared token and says how to make one', async () => {
    const port = String(await freePort());
    const r = await runLaunch(['--nnodes', '2', '--node-rank', '1', '--master-port', port, '--nproc-per-node', '1', worker], {
      MICS_STORE_TOKEN: '',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needs the same MICS_STORE_TOKEN on every node/);
  });
});

describe('failures', () => {
  it('a rank exiting 3 ends the job with exit code 3 and names rank 2 as the root cause', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '4', ...FAST, worker], {
      FIX_PID_DIR: tempDir('exit3'),
      FIX_FAIL_RANK: '2',
      FIX_FAIL_CODE: '3',
      FIX_SLEEP_MS: '20000',
    });
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^\[rank 2\] ENV/m);
    expect(r.stderr).toMatch(/^\[rank 2\] rank 2 failing on purpose$/m);
    const root = r.stderr.split('Root Cause (first observed failure):')[1];
    expect(root).toMatch(/rank {6}: 2 \(local_rank: 2, node: 0\)/);
    expect(root).toMatch(/exitcode {2}: 3 \(pid: \d+\)/);
    // The others were stopped by the launcher, not left running for 20 s.
    const failures = r.stderr.split('Failures:')[1].split('Root Cause')[0];
    for (const rank of [0, 1, 3]) expect(failures).toMatch(new RegExp(`rank {6}: ${rank} .*\\n.*Signal 15 \\(SIGTERM\\)`));
  });

  it('kill -9 of one worker stops the others; the summary says Signal 9 (SIGKILL)', async () => {
    const dir = tempDir('kill9');
    const l = launch(['--standalone', '--nproc-per-node', '3', ...FAST, worker], { FIX_PID_DIR: dir, FIX_SLEEP_MS: '20000' });
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 3, 10000, 'all ranks to start');
    const victim = readPids(dir)[1];
    process.kill(victim.pid, 'SIGKILL');
    const r = await l.done;
    expect(r.code).toBe(128 + 9);
    const root = r.stderr.split('Root Cause (first observed failure):')[1];
    expect(root).toMatch(/rank {6}: 1 /);
    expect(root).toMatch(new RegExp(`exitcode {2}: Signal 9 \\(SIGKILL\\) \\(pid: ${victim.pid}\\)`));
    for (const p of readPids(dir)) expect(() => process.kill(p.pid, 0)).toThrow();
  });

  it('a rank that ignores SIGTERM is killed after the grace period', async () => {
    const t0 = Date.now();
    const r = await runLaunch(['--standalone', '--nproc-per-node', '2', '--grace-period', '0.5', worker], {
      FIX_FAIL_RANK: '0',
      FIX_IGNORE_TERM: '1',
      FIX_SLEEP_MS: '20000',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rank {6}: 1 [^]*Signal 9 \(SIGKILL\)/);
    expect(Date.now() - t0).toBeLessThan(10000);
  });

  it('--max-restarts 1 restarts the whole group once, with TORCHELASTIC_RESTART_COUNT visible', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '3', '--max-restarts', '1', ...FAST, worker], {
      FIX_PID_DIR: tempDir('restart'),
      FIX_FAIL_RANK: '1',
      FIX_FAIL_ONCE: '1',
      FIX_FAIL_CODE: '5',
      FIX_SLEEP_MS: '300',
    });
    expect(r.code).toBe(0);
    const envs = rankEnvs(r.stdout);
    expect(envs.filter((e) => e.TORCHELASTIC_RESTART_COUNT === '0')).toHaveLength(3);
    expect(envs.filter((e) => e.TORCHELASTIC_RESTART_COUNT === '1').map((e) => e.RANK)).toEqual(['0', '1', '2']);
    expect(envs.every((e) => e.TORCHELASTIC_MAX_RESTARTS === '1')).toBe(true);
    expect(r.stderr).toMatch(/rank 1 failed \(exit code 5\); restarting the group \(restart 1 of 1\)/);
    expect(r.stderr).toMatch(/2 attempt\(s\)/);
  });

  it('with no restarts left the job fails with the last root cause', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '2', '--max-restarts', '1', ...FAST, worker], {
      FIX_PID_DIR: tempDir('norestart'),
      FIX_FAIL_RANK: '0',
      FIX_FAIL_CODE: '4',
      FIX_SLEEP_MS: '20000',
    });
    expect(r.code).toBe(4);
    expect(rankEnvs(r.stdout).map((e) => e.TORCHELASTIC_RESTART_COUNT).sort()).toEqual(['0', '0', '1', '1']);
    expect(r.stderr).toMatch(/FAILED \(node 0, after 2 attempt\(s\)/);
  });

  it('a failure on one node stops and restarts the ranks of the other node too', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const common = ['--nnodes', '2', '--nproc-per-node', '1', '--master-port', port, '--run-id', 'mn-restart', '--max-restarts', '1', ...FAST];
    const env = { MICS_STORE_TOKEN: token, FIX_PID_DIR: tempDir('mnr'), FIX_FAIL_RANK: '1', FIX_FAIL_ONCE: '1', FIX_FAIL_CODE: '6', FIX_SLEEP_MS: '800' };
    const [r0, r1] = await Promise.all([
      runLaunch([...common, '--node-rank', '0', worker], env),
      runLaunch([...common, '--node-rank', '1', worker], env),
    ]);
    expect([r0.code, r1.code]).toEqual([0, 0]);
    // Node 0's rank 0 was healthy, yet it ran twice: the whole job restarted.
    expect(rankEnvs(r0.stdout).map((e) => e.TORCHELASTIC_RESTART_COUNT)).toEqual(['0', '1']);
    expect(rankEnvs(r1.stdout).map((e) => e.TORCHELASTIC_RESTART_COUNT)).toEqual(['0', '1']);
  });

  it('without restarts, a failure on node 1 ends node 0 with the same exit code and root cause', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const common = ['--nnodes', '2', '--nproc-per-node', '1', '--master-port', port, '--run-id', 'mn-fail', ...FAST];
    const env = { MICS_STORE_TOKEN: token, FIX_FAIL_RANK: '1', FIX_FAIL_CODE: '9', FIX_SLEEP_MS: '20000' };
    const [r0, r1] = await Promise.all([
      runLaunch([...common, '--node-rank', '0', worker], env),
      runLaunch([...common, '--node-rank', '1', worker], env),
    ]);
    expect([r0.code, r1.code]).toEqual([9, 9]);
    expect(r0.stderr.split('Root Cause')[1]).toMatch(/rank {6}: 1 \(local_rank: 0, node: 1\)[^]*note {6}: on node 1/);
  });
});

describe('the root cause among ranks that really communicate (4 ranks all-reducing in a loop)', () => {
  const collectives = path.join(fixtures, 'collectives.js');

  /** The summary's root cause block and the other failures' blocks, by rank. */
  function summary(stderr: string): { root: string; others: Map<number, string> } {
    const [, rest] = stderr.split('Failures:');
    const [failures, root] = rest.split('Root Cause (first observed failure):');
    const others = new Map<number, string>();
    for (const block of failures.split(/^\[\d+\]:$/m).slice(1)) {
      const rank = /rank {6}: (\d+)/.exec(block);
      if (rank) others.set(Number(rank[1]), block);
    }
    return { root, others };
  }

  /** Every other rank of the job is listed as a consequence: it lost `cause`, or the launcher stopped it. */
  function expectConsequences(stderr: string, cause: number, ranks: number[]): void {
    const { others } = summary(stderr);
    expect([...others.keys()].sort()).toEqual(ranks.filter((r) => r !== cause));
    for (const [rank, block] of others) {
      expect([rank, block]).toEqual([rank, expect.stringMatching(new RegExp(`note {6}: (lost rank ${cause}: a consequence of the root cause|stopped by the launcher after the root cause)`))]);
    }
  }

  it.each([
    ['one node, shared memory', 2, '1'],
    ['2 emulated nodes, TCP ring', 1, '2'],
  ])('%s: kill -9 of rank %i names it as the root cause, the ranks that lost it as consequences', async (_label, victim, emulate) => {
    const dir = tempDir('rc-kill');
    const l = launch(['--standalone', '--nproc-per-node', '4', '--emulate-nodes', emulate, ...FAST, collectives], { FIX_PID_DIR: dir });
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 4, 20000, 'all ranks to be in their loop');
    await new Promise((r) => setTimeout(r, 100));
    process.kill((readPids(dir).find((p) => p.rank === victim) as { pid: number }).pid, 'SIGKILL');
    const r = await l.done;
    expect(r.code).toBe(137);
    const { root } = summary(r.stderr);
    expect(root).toMatch(new RegExp(`rank {6}: ${victim} `));
    expect(root).toMatch(/exitcode {2}: Signal 9 \(SIGKILL\)/);
    expectConsequences(r.stderr, victim, [0, 1, 2, 3]);
  });

  it('an uncaught error thrown by one rank is the root cause, with its message; the peers that lost it are consequences', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '4', '--emulate-nodes', '2', ...FAST, collectives], {
      FIX_PID_DIR: tempDir('rc-throw'),
      FIX_THROW_RANK: '3',
    });
    expect(r.code).toBe(1);
    const { root, others } = summary(r.stderr);
    expect(root).toMatch(/rank {6}: 3 [^]*error {5}: rank 3 failing on purpose/);
    expectConsequences(r.stderr, 3, [0, 1, 2]);
    // The peers that failed on their own say what they saw.
    for (const block of others.values()) {
      if (/lost rank 3/.test(block)) expect(block).toMatch(/error {5}: MICS_PEER_LOST: rank 3 /);
    }
  });

  it('two launchers: a rank killed on node 1 is the root cause on both nodes, even where only its victims were seen', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const dir = tempDir('rc-nodes');
    const common = ['--nnodes', '2', '--nproc-per-node', '2', '--master-port', port, '--run-id', 'rc-nodes', ...FAST, collectives];
    const env = { MICS_STORE_TOKEN: token, FIX_PID_DIR: dir };
    const n0 = launch(['--node-rank', '0', ...common], env);
    const n1 = launch(['--node-rank', '1', ...common], env);
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 4, 20000, 'all ranks to be in their loop');
    await new Promise((r) => setTimeout(r, 100));
    process.kill((readPids(dir).find((p) => p.rank === 2) as { pid: number }).pid, 'SIGKILL');
    const [r0, r1] = await Promise.all([n0.done, n1.done]);
    expect([r0.code, r1.code]).toEqual([137, 137]);
    expect(summary(r0.stderr).root).toMatch(/rank {6}: 2 \(local_rank: 0, node: 1\)[^]*note {6}: on node 1/);
    expect(summary(r1.stderr).root).toMatch(/rank {6}: 2 \(local_rank: 0, node: 1\)/);
    expectConsequences(r0.stderr, 2, [0, 1]);
  });

  it('a rank that never reaches a collective is named where the ranks that timed out waiting for it are', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '4', ...FAST, collectives], { FIX_HANG_RANK: '3', FIX_TIMEOUT_MS: '2000' });
    expect(r.code).toBe(1);
    const { root, others } = summary(r.stderr);
    // The root cause is the first rank to time out; the note says where the job hung.
    expect(root).toMatch(/error {5}: MICS_TIMEOUT: timed out in allReduce[^\n]* waiting for rank 3/);
    expect(root).toMatch(
      /note {6}: rank 3 recorded no error and was stopped by the launcher: it never reached this collective \(ranks? [0-2](, [0-2])* timed out waiting for it\); look at what rank 3 was doing/,
    );
    expect(others.get(3)).toMatch(/note {6}: stopped by the launcher after the root cause; ranks? [0-2](, [0-2])* timed out waiting for it/);
  });

  it('a rank killed inside init() is the root cause; ranks whose init() failed first say they lost it', async () => {
    // Rank 3 comes 30 s late, so everybody waits inside init(); rank 1 dies there.
    const r = await runLaunch(['--standalone', '--nproc-per-node', '4', ...FAST, collectives], {
      FIX_LATE_RANK: '3',
      FIX_DIE_IN_INIT_RANK: '1',
    });
    expect(r.code).toBe(137);
    const { root, others } = summary(r.stderr);
    expect(root).toMatch(/rank {6}: 1 [^]*Signal 9 \(SIGKILL\)/);
    // Ranks 0 and 2 fail in init() within milliseconds, usually before the launcher stops them.
    expectConsequences(r.stderr, 1, [0, 1, 2, 3]);
    for (const block of others.values()) {
      if (/lost rank 1/.test(block)) expect(block).toMatch(/error {5}: MICS_PEER_LOST: init\(\) on rank \d: rank 1 exited or was killed during init\(\)/);
    }
    expect(others.get(3)).toMatch(/note {6}: stopped by the launcher after the root cause/);
  });
});

describe('losing node 0', () => {
  it('when node 0\'s agent is killed -9, its watchdog ends its ranks, and node 1 stops its own, saying it lost the store', async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const dir = tempDir('lost');
    const common = ['--nnodes', '2', '--nproc-per-node', '1', '--master-port', port, '--run-id', 'lost', ...FAST];
    const env = { MICS_STORE_TOKEN: token, FIX_PID_DIR: dir, FIX_SLEEP_MS: '20000' };
    const n0 = launch([...common, '--node-rank', '0', worker], env);
    const n1 = launch([...common, '--node-rank', '1', worker], env);
    try {
      await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2, 10000, 'both ranks to start');
      n0.child.kill('SIGKILL');
      const r1 = await n1.done;
      expect(r1.code).toBe(1);
      expect(r1.stderr).toMatch(/launcher  : node 1: lost the rendezvous store/);
      const rank1 = readPids(dir).find((p) => p.rank === 1);
      expect(() => process.kill(rank1?.pid as number, 0)).toThrow();
      // No handler of node 0's agent ran; its sidecar saw the pipe close and cleaned up.
      const rank0 = readPids(dir).find((p) => p.rank === 0);
      await until(() => survivors([rank0?.pid as number]).length === 0, 5000, "node 0's orphaned rank to be stopped");
    } finally {
      for (const p of readPids(dir)) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await n0.done;
    }
  });
});

describe('losing another node', () => {
  it("when node 1's agent is killed -9, node 0 stops at once and names node 1 as lost (its store connection closed)", async () => {
    const port = String(await freePort());
    const token = randomBytes(32).toString('hex');
    const dir = tempDir('lost1');
    const common = ['--nnodes', '2', '--nproc-per-node', '1', '--master-port', port, '--run-id', 'lost1', ...FAST];
    const env = { MICS_STORE_TOKEN: token, FIX_PID_DIR: dir, FIX_SLEEP_MS: '20000' };
    const n0 = launch([...common, '--node-rank', '0', worker], env);
    const n1 = launch([...common, '--node-rank', '1', worker], env);
    try {
      await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2, 10000, 'both ranks to start');
      n1.child.kill('SIGKILL');
      const t0 = Date.now();
      const r0 = await n0.done;
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(r0.code).toBe(1);
      expect(r0.stderr).toMatch(/mics-launch: node 0: node 1 \(.+\) lost: its launcher's connection to the store closed before it finished/);
      expect(r0.stderr.split('Root Cause')[1]).toMatch(/node {6}: 1 lost: /);
      const ranks = readPids(dir).map((p) => p.pid);
      await until(() => survivors(ranks).length === 0, 5000, 'both ranks to be stopped');
    } finally {
      for (const p of readPids(dir)) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await n1.done;
    }
  });
});

describe('the store', () => {
  it('answers the exported token, and a client with a wrong token can neither read nor write', async () => {
    const r = await runLaunch(['--standalone', '--nproc-per-node', '1', '--run-id', 'probe', ...FAST, path.join(fixtures, 'store-probe.js')]);
    expect(r.code).toBe(0);
    const line = /^\[rank 0\] PROBE (.*)$/m.exec(r.stdout);
    expect(line).not.toBeNull();
    const probe = JSON.parse((line as RegExpExecArray)[1]) as {
      right: { connected: boolean; read: { runId: string }; wrote: boolean };
      wrong: { connected: boolean; read: unknown; wrote: boolean; error: string };
    };
    expect(probe.right).toMatchObject({ connected: true, read: { runId: 'probe', nnodes: 1 }, wrote: true });
    expect(probe.wrong).toMatchObject({ connected: false, read: null, wrote: false, error: 'MICS_STORE_AUTH' });
  });
});
