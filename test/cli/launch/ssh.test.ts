/**
 * Hostfile starts over ssh. A stand-in for ssh (fixtures/launch/fake-ssh.sh runs the remote
 * command with sh here) makes the whole path real: the command line, the token on standard
 * input, the lifeline, and two agents meeting at the store.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixtures, freePort, launch, rankEnvs, readPids, requireBuilt, runLaunch, survivors, tempDir, until, worker } from './harness';

beforeAll(requireBuilt);

const fakeSsh = `sh ${path.join(fixtures, 'fake-ssh.sh')}`;

function hostfile(text: string): string {
  const file = path.join(tempDir('hostfile'), 'hostfile');
  fs.writeFileSync(file, text);
  return file;
}

describe('--hostfile', () => {
  it('--dry-run prints the exact command of each node, without the token', async () => {
    const hf = hostfile('# two nodes\nworker-0 slots=4\nworker-1 slots=4\n');
    const r = await runLaunch(
      ['--hostfile', hf, '--exclude', 'worker-1:1,3', '--master-port', '6000', '--run-id', 'hf-job', '--dry-run', worker, '--lr', '0.1'],
      { MICS_STORE_TOKEN: 'a'.repeat(64), NCCL_DEBUG: 'INFO' },
    );
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[1]).toBe('# node 0: worker-0, 4 rank(s) (slots 0,1,2,3)');
    expect(lines[3]).toBe('# node 1: worker-1, 2 rank(s) (slots 0,2)');
    const node1 = lines[4];
    expect(node1.startsWith("ssh worker-1 'cd ")).toBe(true);
    expect(node1).toContain('&& IFS= read -r MICS_STORE_TOKEN && export MICS_STORE_TOKEN && exec env CUDA_VISIBLE_DEVICES=0,2 NCCL_DEBUG=INFO ');
    expect(node1).toContain(
      '--nproc-per-node 2 --node-rank 1 --nnodes 2 --master-addr worker-0 --master-port 6000 --run-id hf-job --max-restarts 0',
    );
    expect(node1).toMatch(/--stdin-lifeline -- \S*worker\.js --lr 0\.1'$/);
    expect(lines[2]).not.toContain('CUDA_VISIBLE_DEVICES');
    expect(r.stdout).toContain('MICS_STORE_TOKEN (<redacted>) is written to each ssh');
    expect(r.stdout).not.toMatch(/a{64}/);
  });

  it('reports hostfile errors clearly and exits 2', async () => {
    const hf = hostfile('a slots=2\nb slots=two\n');
    const r = await runLaunch(['--hostfile', hf, '--dry-run', worker]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mics-launch: error: hostfile ${hf} line 2: slots must be a positive integer, got 'two' for host 'b'`);
  });

  it('starts one agent per host; ranks are node-major across them', async () => {
    const hf = hostfile('127.0.0.1 slots=2\nlocalhost slots=1\n');
    const port = String(await freePort());
    const r = await runLaunch(['--hostfile', hf, '--ssh', fakeSsh, '--master-port', port, '--grace-period', '0.5', worker]);
    expect(r.stderr).not.toMatch(/FAILED|error/);
    expect(r.code).toBe(0);
    const envs = rankEnvs(r.stdout);
    expect(envs.map((e) => [e.RANK, e.GROUP_RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.MASTER_ADDR, e.TOKEN_HEX64])).toEqual([
      ['0', '0', '0', '3', '127.0.0.1', true],
      ['1', '0', '1', '3', '127.0.0.1', true],
      ['2', '1', '0', '3', '127.0.0.1', true],
    ]);
    expect(new Set(envs.map((e) => e.TORCHELASTIC_RUN_ID)).size).toBe(1);
  });

  it('passes the root cause exit code through, and SIGINT to the starter leaves nothing behind', async () => {
    const hf = hostfile('127.0.0.1 slots=1\nlocalhost slots=1\n');
    const port = String(await freePort());
    const failed = await runLaunch(['--hostfile', hf, '--ssh', fakeSsh, '--master-port', port, '--grace-period', '0.5', worker], {
      FIX_FAIL_RANK: '1',
      FIX_FAIL_CODE: '7',
      FIX_SLEEP_MS: '20000',
    });
    expect(failed.code).toBe(7);

    const dir = tempDir('ssh-sigint');
    const port2 = String(await freePort());
    const l = launch(['--hostfile', hf, '--ssh', fakeSsh, '--master-port', port2, '--grace-period', '0.5', worker], {
      FIX_PID_DIR: dir,
      FIX_CHILD: '1',
      FIX_SLEEP_MS: '30000',
    });
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2, 15000, 'both nodes to start');
    const ids = readPids(dir).flatMap((p) => [p.pid, p.childPid as number]);
    l.child.kill('SIGINT');
    const r = await l.done;
    expect(r.code).toBe(130);
    // Each remote agent lost its lifeline and stopped its ranks as for SIGHUP.
    expect(r.stderr).toMatch(/launcher  : node \d received SIGHUP/);
    expect(survivors(ids)).toEqual([]);
  });
});
