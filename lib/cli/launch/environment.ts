/**
 * The environment each rank starts with: torchrun's variables, the store's address and token,
 * and thread defaults. This is the contract the collective library's init() reads.
 */
import { randomBytes } from 'node:crypto';
import { ERROR_FILE_ENV, rankEnvironment, STORE_TOKEN_ENV } from '../../comm/environment';
import type { JobLayout, RankPlan } from './layout';
import { ONE_GPU_VARIABLES, oneGpuEnvironment } from './one-gpu';

/** The variable carrying the store token: set for workers, never printed. */
export const TOKEN_ENV = STORE_TOKEN_ENV;

/** What the dry run shows instead of the token. */
export const REDACTED = '<redacted>';

/** A fresh random store token: 32 bytes, hex. */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/** A token given to a multi-node job must look like one {@link newToken} makes, so typos fail early. */
export function isValidToken(token: string): boolean {
  return /^[0-9a-fA-F]{64}$/.test(token);
}

/** Job-wide facts that go into every rank's environment. */
export interface JobEnvironment {
  readonly masterAddr: string;
  /** The store's real port (after a free port was chosen). */
  readonly masterPort: number;
  readonly runId: string;
  readonly restartCount: number;
  readonly maxRestarts: number;
  readonly token: string;
  /** --one-gpu: the device every rank uses (one-gpu.ts); undefined = off. */
  readonly oneGpu?: number;
}

/**
 * The environment of one rank: the launcher's own environment plus the variables of the
 * contract (built by the collective library's {@link rankEnvironment}, the inverse of what
 * init() reads). OMP_NUM_THREADS=1 is set only when unset and more than one rank runs on this
 * machine (so ranks do not oversubscribe the cores). CUDA_VISIBLE_DEVICES is passed through
 * untouched: a rank uses device LOCAL_RANK among the visible devices (MICS_AGENT_LOCAL_RANK
 * under --emulate-nodes, where emulated nodes share one machine's devices). `errorFile` is
 * where the rank records why it failed (MICS_ERROR_FILE), read back for the summary.
 */
export function workerEnvironment(
  base: NodeJS.ProcessEnv,
  layout: JobLayout,
  plan: RankPlan,
  job: JobEnvironment,
  errorFile?: string,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    ...rankEnvironment({
      rank: plan.rank,
      worldSize: layout.worldSize,
      localRank: plan.localRank,
      localWorldSize: plan.localWorldSize,
      node: plan.groupRank,
      nodeCount: layout.groupWorldSize,
      masterAddr: job.masterAddr,
      masterPort: job.masterPort,
      storeToken: job.token,
      storeHosted: true,
      runId: job.runId,
      restartCount: job.restartCount,
      maxRestarts: job.maxRestarts,
      agentLocalRank: plan.agentIndex,
      errorFile,
    }),
  };
  // Never inherit an error file meant for an enclosing job's rank.
  if (errorFile === undefined) delete env[ERROR_FILE_ENV];
  if ((env.OMP_NUM_THREADS === undefined || env.OMP_NUM_THREADS === '') && layout.ranks.length > 1) {
    env.OMP_NUM_THREADS = '1';
  }
  if (job.oneGpu !== undefined) Object.assign(env, oneGpuEnvironment(plan.rank, job.oneGpu, job.runId, base));
  return env;
}

/** The variables of the launcher's contract with the ranks, in the order a dry run shows them. */
export const CONTRACT_VARIABLES: readonly string[] = [
  'RANK',
  'LOCAL_RANK',
  'WORLD_SIZE',
  'LOCAL_WORLD_SIZE',
  'GROUP_RANK',
  'GROUP_WORLD_SIZE',
  'ROLE_NAME',
  'ROLE_RANK',
  'ROLE_WORLD_SIZE',
  'MASTER_ADDR',
  'MASTER_PORT',
  'TORCHELASTIC_RESTART_COUNT',
  'TORCHELASTIC_MAX_RESTARTS',
  'TORCHELASTIC_RUN_ID',
  'MICS_STORE_HOSTED',
  'MICS_AGENT_LOCAL_RANK',
  TOKEN_ENV,
  ERROR_FILE_ENV,
  'OMP_NUM_THREADS',
  ...ONE_GPU_VARIABLES,
];

/**
 * The variables {@link workerEnvironment} adds or changes, contract variables first in their
 * order, with the token redacted: for --dry-run.
 */
export function describeWorkerEnvironment(base: NodeJS.ProcessEnv, env: NodeJS.ProcessEnv): string[] {
  const lines: string[] = [];
  const rank = (k: string): number => {
    const i = CONTRACT_VARIABLES.indexOf(k);
    return i < 0 ? CONTRACT_VARIABLES.length : i;
  };
  const entries = Object.entries(env).sort(([a], [b]) => rank(a) - rank(b));
  for (const [k, v] of entries) {
    // The token line is always shown (redacted) so a dry run documents that it is passed.
    if (v === undefined || (base[k] === v && k !== TOKEN_ENV)) continue;
    lines.push(`${k}=${k === TOKEN_ENV ? REDACTED : v}`);
  }
  return lines;
}
