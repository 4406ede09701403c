/**
 * Starts N local ranks of the current command when it was not started by a
 * launcher (RANK unset), like `mpirun -np N` around nccl-tests. Emulated nodes
 * split the ranks into groups with their own GROUP_RANK (shared memory inside a
 * group, TCP between groups). Rank 0's output is forwarded; the exit code is the
 * first failure's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { invalidArgument } from '../../core/errors';
import { rankEnvironment } from '../../comm/environment';

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The variables of rank `rank` of `worldSize` ranks on this machine, `perNode` to
 * an (emulated) node, with rank 0 hosting the store at 127.0.0.1:`port`; its rank
 * is its device index.
 */
export function localRankEnvironment(rank: number, worldSize: number, perNode: number, port: number, storeToken: string): Record<string, string> {
  return rankEnvironment({
    rank,
    worldSize,
    localRank: rank % perNode,
    localWorldSize: perNode,
    node: Math.floor(rank / perNode),
    nodeCount: worldSize / perNode,
    masterAddr: '127.0.0.1',
    masterPort: port,
    storeToken,
    storeHosted: false,
    agentLocalRank: rank,
  });
}

/** Most ranks `--nproc` starts on this machine (as mics-launch's --nproc-per-node). */
const MAX_LOCAL_RANKS = 1 << 16;

/**
 * The `node` flags a rank inherits: all of this process's (`node --cpu-prof mics bench
 * ...` profiles every rank, `--require` hooks load in each), as Node's cluster module
 * passes them to workers, except the inspector's, whose one port all ranks would try
 * to take.
 */
export function rankNodeFlags(execArgv: readonly string[]): string[] {
  const flags: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const flag = execArgv[i];
    if (/^--(inspect|debug)(-brk|-port|-wait)?(=|$)/.test(flag)) {
      // '--inspect-port 9230' takes the next argument too
      if (/^--(inspect|debug)-port$/.test(flag)) i++;
      continue;
    }
    flags.push(flag);
  }
  return flags;
}

/** Re-runs this process's own command line as `nproc` ranks; resolves to the exit code. */
export async function runLocalRanks(nproc: number, emulateNodes: number): Promise<number> {
  // The bound of mics-launch's --nproc-per-node: local processes, each a rank.
  if (!Number.isInteger(nproc) || nproc < 1 || nproc > MAX_LOCAL_RANKS) {
    throw invalidArgument(`--nproc ${nproc} is not valid: use an integer from 1 to ${MAX_LOCAL_RANKS}`);
  }
  if (!Number.isInteger(emulateNodes) || emulateNodes < 1 || nproc % emulateNodes !== 0) {
    throw invalidArgument(`--emulate-nodes ${emulateNodes} is not valid: use a divisor of --nproc ${nproc}`);
  }
  const perNode = nproc / emulateNodes;
  const port = await freePort();
  const token = randomBytes(32).toString('hex');
  const children: ChildProcess[] = [];
  const exits = Array.from({ length: nproc }, (_, rank) => {
    const child = spawn(process.execPath, [...rankNodeFlags(process.execArgv), ...process.argv.slice(1)], {
      stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', 'inherit'],
      env: {
        ...process.env,
        ...localRankEnvironment(rank, nproc, perNode, port, token),
        OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1',
      },
    });
    children.push(child);
    return new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  });
  // One failed rank leaves the others waiting on it until their timeout: stop them.
  const codes = await Promise.all(
    exits.map((exit) =>
      exit.then((code) => {
        if (code !== 0) for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
        return code;
      }),
    ),
  );
  return codes.find((c) => c !== 0) ?? 0;
}
