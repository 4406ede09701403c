/**
 * Hostfile starts over ssh. A stand-in for ssh (fixtures/launch/fake-ssh.sh runs the remote
 * command with sh here, in a fresh environment as sshd would) makes the whole path real: the
 * command line, the token and the environment on standard input, the lifeline, the agents'
 * reports, and two agents meeting at the store. In this stand-in the "ssh" process becomes the
 * remote agent itself (sh execs it), so killing or stopping it is killing or stopping the agent.
 * The same scenarios over a real sshd per emulated node: ssh-cluster.test.ts.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fixtures, freePort, launch, rankEnvs, readPids, requireBuilt, runLaunch, survivors, tempDir, until, worker } from './harness';

beforeAll(requireBuilt);

const fakeSsh = `sh ${path.join(fixtures, 'fake-ssh.sh')}`;

function hostfile(text: string): string {
  const file = path.join(tempDir('hostfile'), 'hostfile');
  fs.writeFileSync(file, text);
  return file;
}

/** Options of a fast two-node start through the stand-in ssh. */
async function fastArgs(hf: string, ...extra: string[]): Promise<string[]> {
  const port = String(await freePort());
  return ['--hostfile', hf, '--ssh', fakeSsh, '--master-port', port, '--grace-period', '0.5', '--monitor-interval', '0.05', ...extra];
}

/** The agent processes of a job: `mics-launch.js ... --node-rank K ... --stdin-lifeline`, from /proc. */
function agentPid(port: string, nodeRank: number): number | undefined {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmd: string[];
    try {
      cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const at = (flag: string): string | undefined => cmd[cmd.indexOf(flag) + 1];
    if (cmd.includes('--stdin-lifeline') && at('--master-port') === port && at('--node-rank') === String(nodeRank)) return Number(name);
  }
  return undefined;
}

/** The root cause block of a summary. */
function rootCause(stderr: string): string {
  const i = stderr.indexOf('Root Cause');
  return i < 0 ? '' : stderr.slice(i);
}

describe('--hostfile', () => {
  it('--dry-run prints the exact command of each node: ssh with BatchMode and keepalives, the environment on standard input', async () => {
    const hf = hostfile('# two nodes\nworker-0 slots=4\nworker-1 slots=4\n');
    const r = await runLaunch(
      [
        '--hostfile', hf, '--exclude', 'worker-1:1,3', '--master-port', '6000', '--run-id', 'hf-job',
        '--env-allow', 'NCCL_*,FOO', '--heartbeat-timeout', '8', '--dry-run', worker, '--lr', '0.1',
      ],
      { MICS_STORE_TOKEN: 'a'.repeat(64), NCCL_DEBUG: 'INFO', FOO: 'secret-value', BAR: '1' },
    );
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[1]).toBe('# node 0: worker-0, 4 rank(s) (slots 0,1,2,3)');
    expect(lines[3]).toBe('# environment on standard input: 2 variable(s): FOO NCCL_DEBUG');
    expect(lines[4]).toBe('# node 1: worker-1, 2 rank(s) (slots 0,2)');
    const node1 = lines[5];
    expect(node1.startsWith("ssh -o BatchMode=yes -o ConnectTimeout=8 -o ServerAliveInterval=2 -o ServerAliveCountMax=3 worker-1 'cd ")).toBe(true);
    expect(node1).toContain('&& IFS= read -r MICS_STORE_TOKEN && export MICS_STORE_TOKEN && exec ');
    expect(node1).toContain(
      '--nproc-per-node 2 --node-rank 1 --nnodes 2 --master-addr worker-0 --master-port 6000 --run-id hf-job --max-restarts 0',
    );
    expect(node1).toContain('--heartbeat-timeout 8');
    expect(node1).toMatch(/--stdin-lifeline -- \S*worker\.js --lr 0\.1'$/);
    // A slot subset makes exactly those devices visible on that node.
    expect(lines[6]).toBe('# environment on standard input: 3 variable(s), CUDA_VISIBLE_DEVICES=0,2: FOO NCCL_DEBUG CUDA_VISIBLE_DEVICES');
    expect(r.stdout).toContain('MICS_STORE_TOKEN (<redacted>) and the environment are written to each ssh');
    // Values (secrets among them) are never on a command line or printed.
    expect(r.stdout).not.toMatch(/a{64}|secret-value/);
  });

  it('reports hostfile errors clearly and exits 2', async () => {
    const hf = hostfile('a slots=2\nb slots=two\n');
    const r = await runLaunch(['--hostfile', hf, '--dry-run', worker]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mics-launch: error: hostfile ${hf} line 2: slots must be a positive integer, got 'two' for host 'b'`);
  });

  it("starts one agent per host, ranks node-major; every rank gets the launcher's environment and the env file; output is tagged by node", async () => {
    const hf = hostfile('127.0.0.1 slots=2\nlocalhost slots=1\n');
    const dir = tempDir('envfile');
    const envFile = path.join(dir, 'job.env');
    fs.writeFileSync(envFile, '# for every node\nFROM_FILE=a b=c\nOMP_NUM_THREADS=3\n');
    const r = await runLaunch([...(await fastArgs(hf, '--env-file', envFile, '--env-deny', 'DENIED_*')), worker], {
      FIX_PRINT_ENV: 'FOO,FROM_FILE,DENIED_X,HOME_LIKE',
      FOO: '1',
      OMP_NUM_THREADS: '4',
      CUDA_VISIBLE_DEVICES: '1,0,2',
      DENIED_X: 'no',
    });
    expect(r.stderr).not.toMatch(/FAILED|error/);
    expect(r.code).toBe(0);
    const envs = rankEnvs(r.stdout);
    expect(envs.map((e) => [e.RANK, e.GROUP_RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.MASTER_ADDR, e.TOKEN_HEX64])).toEqual([
      ['0', '0', '0', '3', '127.0.0.1', true],
      ['1', '0', '1', '3', '127.0.0.1', true],
      ['2', '1', '0', '3', '127.0.0.1', true],
    ]);
    for (const e of envs) {
      expect([e.FOO, e.FROM_FILE, e.OMP_NUM_THREADS, e.CUDA_VISIBLE_DEVICES, e.DENIED_X]).toEqual(['1', 'a b=c', '3', '1,0,2', undefined]);
    }
    expect(new Set(envs.map((e) => e.TORCHELASTIC_RUN_ID)).size).toBe(1);
    expect(r.stdout).toMatch(/^\[node 1\] \[rank 2\] ENV /m);
    expect(r.stderr).toMatch(/^mics-launch: .*worker\.js finished: 3 rank\(s\) on 2 node\(s\), exit code 0/m);
  });

  it("exits with the root cause's code and prints one summary for the job naming it", async () => {
    const hf = hostfile('127.0.0.1 slots=1\nlocalhost slots=1\n');
    const failed = await runLaunch([...(await fastArgs(hf)), worker], { FIX_FAIL_RANK: '1', FIX_FAIL_CODE: '7', FIX_SLEEP_MS: '20000' });
    expect(failed.code).toBe(7);
    expect(failed.stderr.match(/FAILED/g)).toHaveLength(1);
    expect(failed.stderr).toMatch(/FAILED \(2 node\(s\)/);
    expect(rootCause(failed.stderr)).toMatch(/rank      : 1 \(local_rank: 0, node: 1\)\n  exitcode  : 7/);
  });

  it('SIGINT to the starter reaches every rank as SIGINT, exits 130 and leaves nothing behind', async () => {
    const hf = hostfile('127.0.0.1 slots=1\nlocalhost slots=1\n');
    const dir = tempDir('ssh-sigint');
    const l = launch([...(await fastArgs(hf)), worker], { FIX_PID_DIR: dir, FIX_CHILD: '1', FIX_SLEEP_MS: '30000' });
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2, 15000, 'both nodes to start');
    const ids = readPids(dir).flatMap((p) => [p.pid, p.childPid as number]);
    l.child.kill('SIGINT');
    const r = await l.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/launcher  : mics-launch --hostfile received SIGINT and forwarded it to every node/);
    // The ranks died of the signal the launcher received (a training script's SIGINT handler runs).
    expect(r.stderr.match(/exitcode  : Signal 2 \(SIGINT\)/g)).toHaveLength(2);
    expect(survivors(ids)).toEqual([]);
  });

  it("a node's agent killed outright: the job stops at once, naming that node; exit code 1; nothing left", async () => {
    const hf = hostfile('127.0.0.1 slots=1\nlocalhost slots=1\n');
    const dir = tempDir('ssh-agent-killed');
    const args = await fastArgs(hf);
    const port = args[args.indexOf('--master-port') + 1];
    const l = launch([...args, worker], { FIX_PID_DIR: dir, FIX_SLEEP_MS: '30000' });
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2, 15000, 'both nodes to start');
    const ids = readPids(dir).map((p) => p.pid);
    const agent = agentPid(port, 1) as number;
    expect(agent).toBeGreaterThan(0);
    process.kill(agent, 'SIGKILL');
    const t0 = Date.now();
    const r = await l.done;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mics-launch: node 1 \(localhost\) lost: its ssh session ended \(killed by SIGKILL\) without the agent's report/);
    expect(rootCause(r.stderr)).toMatch(/host      : localhost.*\n  node      : 1 lost: /);
    expect(survivors([...ids, agent])).toEqual([]);
    // Nothing holds the store's port: the same job starts again at once.
    const again = await runLaunch([...args, worker]);
    expect(again.stderr).not.toMatch(/in use|rejected/);
    expect(again.code).toBe(0);
  });

  it('an unreachable host is named with what ssh said, at once (not after the rendezvous timeout)', async () => {
    const hf = hostfile('127.0.0.1 slots=1\nunreachable-host slots=1\n');
    const t0 = Date.now();
    const r = await runLaunch([...(await fastArgs(hf)), worker], { FIX_SLEEP_MS: '30000' });
    expect(Date.now() - t0).toBeLessThan(10000);
    expect(r.code).toBe(1);
    expect(rootCause(r.stderr)).toContain(
      "host      : unreachable-host\n  node      : 1 lost: its ssh session ended (exit code 255) without the agent's report: " +
        'ssh: connect to host unreachable-host port 22: No route to host',
    );
  });

  it('node 0 cannot start the store (port in use): every node stops at once and the summary says why', async () => {
    const hf = hostfile('127.0.0.1 slots=1\nlocalhost slots=1\n');
    const args = await fastArgs(hf);
    const port = Number(args[args.indexOf('--master-port') + 1]);
    const blocker = net.createServer().listen(port, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    try {
      const t0 = Date.now();
      const r = await runLaunch([...args, worker], { FIX_SLEEP_MS: '30000' });
      expect(Date.now() - t0).toBeLessThan(10000);
      expect(r.code).toBe(1);
      expect(rootCause(r.stderr)).toContain(`launcher  : node 0: node 0 could not start the rendezvous store on 127.0.0.1:${port}: port ${port} is in use`);
    } finally {
      blocker.close();
    }
  });

  it('a hung node (its agent stopped: no heartbeats, no lifeline) is found lost within the heartbeat timeout', async () => {
    const hf = hostfile('127.0.0.1 slots=1\nlocalhost slots=1\n');
    const dir = tempDir('ssh-hung');
    const args = await fastArgs(hf, '--heartbeat-timeout', '1.5');
    const port = args[args.indexOf('--master-port') + 1];
    const l = launch([...args, worker], { FIX_PID_DIR: dir, FIX_SLEEP_MS: '30000' });
    await until(() => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2, 15000, 'both nodes to start');
    const ids = readPids(dir).map((p) => p.pid);
    const agent = agentPid(port, 1) as number;
    process.kill(agent, 'SIGSTOP');
    const t0 = Date.now();
    const r = await l.done;
    // Heartbeat timeout 1.5 s (+ one interval), the stop, and the starter ending the session.
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(r.code).toBe(1);
    expect(rootCause(r.stderr)).toMatch(/node      : 1 lost: no heartbeat from its launcher for \d+\.\d s \(network partition, or the host hung\)/);
    await until(() => survivors([...ids, agent]).length === 0, 5000, 'the stopped node to be cleaned up');
  });
});
