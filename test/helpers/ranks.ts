/**
 * Starts N real rank processes the way a launcher would (torchrun-style environment,
 * rank 0 hosts the rendezvous store on a free port) and collects what each printed.
 *
 * A rank script prints exactly one line `RESULT <json>` with its results; runRanks
 * parses it into `json`. Every process is killed (SIGKILL) when the run exceeds its
 * timeout, and `killAllRanks()` (call it in afterAll) kills anything still alive, so
 * a failing test never leaves processes behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rankEnvironment as contractEnvironment } from '../../lib/comm/environment';
import { freePort } from '../../lib/cli/bench/local-ranks';

/** A TCP port that was free a moment ago (the library's own, which `mics bench` uses). */
export { freePort };

export const repoRoot = path.resolve(__dirname, '..', '..');
export const commFixtures = path.join(repoRoot, 'test', 'fixtures', 'comm');
export const commWorker = path.join(commFixtures, 'worker.js');

/** How one rank ended and what it printed. */
export interface RankResult {
  rank: number;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The parsed `RESULT {...}` line, or undefined when the rank printed none. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** True when this rank was killed because the run exceeded its timeout. */
  timedOut: boolean;
}

export interface RunRanksOptions {
  /** Number of ranks (WORLD_SIZE). */
  n: number;
  /** The rank script (default: test/fixtures/comm/worker.js). */
  script?: string;
  /** Arguments after the script. */
  args?: string[];
  /** Node.js options before the script (e.g. --expose-gc). */
  nodeArgs?: string[];
  /** Extra environment for every rank. */
  env?: NodeJS.ProcessEnv;
  /** Extra environment for one rank (applied after `env`). */
  rankEnv?: (rank: number) => NodeJS.ProcessEnv;
  /**
   * Emulated nodes: a count (ranks split evenly into consecutive blocks) or the node
   * of every rank. Default: all ranks on one node.
   */
  nodes?: number | number[];
  /** Kill every rank still running after this long (default 60000 ms). */
  timeoutMs?: number;
  /** MASTER_PORT (default: a free port). */
  port?: number;
  /** MICS_STORE_TOKEN (default: a random one). */
  token?: string;
  /** Which ranks to start (default all): the others are started by the caller. */
  only?: number[];
}

/** A started run. */
export interface StartedRanks {
  port: number;
  token: string;
  children: Map<number, ChildProcess>;
  /** Settles when every started rank has exited (or was killed at the timeout). */
  done: Promise<RankResult[]>;
  /** Output printed so far by a rank. */
  stdout(rank: number): string;
}

const live = new Set<ChildProcess>();

/** Kills (SIGKILL) every rank process this module started that is still running. */
export function killAllRanks(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}


function nodeOf(rank: number, n: number, nodes: number | number[] | undefined): { node: number; localRank: number; localSize: number } {
  const list =
    nodes === undefined
      ? Array.from({ length: n }, () => 0)
      : Array.isArray(nodes)
        ? nodes
        : Array.from({ length: n }, (_, r) => Math.floor(r / Math.ceil(n / nodes)));
  const node = list[rank];
  const same = list.map((v, r) => ({ v, r })).filter((e) => e.v === node);
  return { node, localRank: same.findIndex((e) => e.r === rank), localSize: same.length };
}

/**
 * The environment rank `rank` of an n-rank job gets: the library's own builder (what
 * mics-launch exports), with rank 0 hosting the store, then the test's overrides. An empty
 * value removes the variable.
 */
export function rankEnvironment(rank: number, options: RunRanksOptions & { port: number; token: string }): NodeJS.ProcessEnv {
  const { node, localRank, localSize } = nodeOf(rank, options.n, options.nodes);
  const nodeCount = new Set(Array.from({ length: options.n }, (_, r) => nodeOf(r, options.n, options.nodes).node)).size;
  return {
    ...contractEnvironment({
      rank,
      worldSize: options.n,
      localRank,
      localWorldSize: localSize,
      node,
      nodeCount,
      masterAddr: '127.0.0.1',
      masterPort: options.port,
      storeToken: options.token,
      storeHosted: false,
      // Every rank runs on this machine: its rank is its device index.
      agentLocalRank: rank,
    }),
    MICS_TIMEOUT_MS: '',
    MICS_ERROR_FILE: '',
    ...(options.env ?? {}),
    ...(options.rankEnv?.(rank) ?? {}),
  };
}

function parseResult(stdout: string): unknown {
  const lines = stdout.split('\n').filter((l) => l.startsWith('RESULT '));
  if (lines.length === 0) return undefined;
  try {
    return JSON.parse(lines[lines.length - 1].slice('RESULT '.length));
  } catch {
    return undefined;
  }
}

/** Starts the ranks and returns at once. */
export async function startRanks(options: RunRanksOptions): Promise<StartedRanks> {
  const port = options.port ?? (await freePort());
  const token = options.token ?? randomBytes(32).toString('hex');
  const script = options.script ?? commWorker;
  const timeoutMs = options.timeoutMs ?? 60000;
  const ranks = options.only ?? Array.from({ length: options.n }, (_, r) => r);
  const children = new Map<number, ChildProcess>();
  const outputs = new Map<number, { out: string; err: string }>();
  const waits: Promise<RankResult>[] = [];
  let timedOut = false;
  for (const rank of ranks) {
    const env = { ...process.env, ...rankEnvironment(rank, { ...options, port, token }) };
    for (const [k, v] of Object.entries(env)) if (v === '') delete env[k];
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...(options.args ?? [])], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    children.set(rank, child);
    const io = { out: '', err: '' };
    outputs.set(rank, io);
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (io.out += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (io.err += c));
    waits.push(
      new Promise<RankResult>((resolve) => {
        child.on('close', (code, signal) => {
          live.delete(child);
          resolve({
            rank,
            pid: child.pid ?? -1,
            code,
            signal,
            stdout: io.out,
            stderr: io.err,
            json: parseResult(io.out),
            timedOut,
          });
        });
      }),
    );
  }
  const timer = setTimeout(() => {
    timedOut = true;
    for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, timeoutMs);
  const done = Promise.all(waits).then((results) => {
    clearTimeout(timer);
    return results.map((r) => ({ ...r, timedOut }));
  });
  return { port, token, children, done, stdout: (rank) => outputs.get(rank)?.out ?? '' };
}

/** Starts the ranks and waits until all of them exited. */
export async function runRanks(options: RunRanksOptions): Promise<RankResult[]> {
  return (await startRanks(options)).done;
}

/** One line per rank that says how it ended, with the tail of its stderr: for failure messages. */
export function describeRanks(results: RankResult[]): string {
  return results
    .map((r) => {
      const tail = r.stderr.trim().split('\n').slice(-8).join('\n    ');
      const how = r.timedOut ? 'KILLED AT TIMEOUT' : `code=${r.code} signal=${r.signal}`;
      return `rank ${r.rank} (pid ${r.pid}) ${how}${r.json === undefined ? ' (no RESULT line)' : ''}${tail ? `\n    ${tail}` : ''}`;
    })
    .join('\n');
}

/** Shared-memory segments of this package whose name says one of `pids` created them. */
export function shmSegmentsOf(pids: number[]): string[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync('/dev/shm');
  } catch {
    return [];
  }
  const wanted = new Set(pids.map(String));
  return names.filter((n) => {
    const m = /^mics-(\d+)-/.exec(n);
    return m !== null && wanted.has(m[1]);
  });
}

/** Whether a process with this pid still exists (zombies count as gone once reaped by us). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
