/**
 * A rank's place in the job as torchrun-style environment variables: RANK, WORLD_SIZE,
 * LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT (+ MICS_STORE_TOKEN,
 * MICS_STORE_HOSTED, MICS_AGENT_LOCAL_RANK, MICS_ERROR_FILE from mics-launch). Both sides of
 * the contract live here: {@link rankEnvironment} writes the variables (every starter of ranks
 * uses it: mics-launch, the benchmarks' local ranks, the tests) and
 * {@link readRankEnvironment} reads them in init(). Pure: the environment is a value, so every
 * case is unit-tested.
 */
import { invalidArgument } from '../core/errors';

/** The variable carrying the rendezvous store's token. */
export const STORE_TOKEN_ENV = 'MICS_STORE_TOKEN';

/** The variable naming the file where a rank records why it failed (see failure-record.ts). */
export const ERROR_FILE_ENV = 'MICS_ERROR_FILE';

/** What a starter tells one rank: the input of {@link rankEnvironment}. */
export interface RankLaunch {
  /** Global rank (RANK). */
  rank: number;
  worldSize: number;
  /** Rank inside its (emulated) node (LOCAL_RANK). */
  localRank: number;
  localWorldSize: number;
  /** Its (emulated) node's rank (GROUP_RANK). */
  node: number;
  /** Number of (emulated) nodes (GROUP_WORLD_SIZE). */
  nodeCount: number;
  /** Where the rendezvous store is. */
  masterAddr: string;
  masterPort: number;
  /** The store's token (MICS_STORE_TOKEN). */
  storeToken: string;
  /** True when the starter hosts the store (mics-launch); false when rank 0 hosts it. */
  storeHosted: boolean;
  /** TORCHELASTIC_RUN_ID (default 'default'). */
  runId?: string;
  /** TORCHELASTIC_RESTART_COUNT (default 0). */
  restartCount?: number;
  /** TORCHELASTIC_MAX_RESTARTS (default 0). */
  maxRestarts?: number;
  /**
   * Index among all ranks its starter runs on this machine: the device index
   * (MICS_AGENT_LOCAL_RANK; default `localRank`, which differs under emulated nodes).
   */
  agentLocalRank?: number;
  /** Where the rank records why it failed (MICS_ERROR_FILE); none when undefined. */
  errorFile?: string;
}

/**
 * The variables of one rank, to be laid over the starter's own environment
 * (`{ ...process.env, ...rankEnvironment(launch) }`). The inverse of
 * {@link readRankEnvironment}.
 */
export function rankEnvironment(launch: RankLaunch): Record<string, string> {
  const vars: Record<string, string | number> = {
    RANK: launch.rank,
    LOCAL_RANK: launch.localRank,
    WORLD_SIZE: launch.worldSize,
    LOCAL_WORLD_SIZE: launch.localWorldSize,
    GROUP_RANK: launch.node,
    GROUP_WORLD_SIZE: launch.nodeCount,
    // One role, as torchrun without --role.
    ROLE_NAME: 'default',
    ROLE_RANK: launch.rank,
    ROLE_WORLD_SIZE: launch.worldSize,
    MASTER_ADDR: launch.masterAddr,
    MASTER_PORT: launch.masterPort,
    TORCHELASTIC_RESTART_COUNT: launch.restartCount ?? 0,
    TORCHELASTIC_MAX_RESTARTS: launch.maxRestarts ?? 0,
    TORCHELASTIC_RUN_ID: launch.runId ?? 'default',
    // Always set, so a value inherited from an enclosing launcher cannot leak in.
    MICS_STORE_HOSTED: launch.storeHosted ? 1 : 0,
    MICS_AGENT_LOCAL_RANK: launch.agentLocalRank ?? launch.localRank,
    [STORE_TOKEN_ENV]: launch.storeToken,
  };
  if (launch.errorFile !== undefined) vars[ERROR_FILE_ENV] = launch.errorFile;
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, String(v)]));
}

/** Where this process sits in the job. */
export interface RankEnvironment {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  /** Node rank (GROUP_RANK): ranks with the same node share memory. */
  node: number;
  masterAddr: string;
  masterPort: number;
  /** Token of the rendezvous store; undefined when none was exported. */
  storeToken: string | undefined;
  /** True under mics-launch: the launcher hosts the store, rank 0 must not. */
  storeHosted: boolean;
  /** Key prefix that separates runs and restarts in a shared store. */
  keyPrefix: string;
  /** Index among its starter's ranks on this machine: the device index (MICS_AGENT_LOCAL_RANK, else LOCAL_RANK). */
  agentLocalRank: number;
  /** Where to record why this rank failed (MICS_ERROR_FILE); undefined when not asked. */
  errorFile: string | undefined;
}

function readInt(env: NodeJS.ProcessEnv, name: string, { min, max }: { min: number; max?: number }): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!/^\s*-?\d+\s*$/.test(raw) || !Number.isSafeInteger(value) || value < min || (max !== undefined && value > max)) {
    const range = max === undefined ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw invalidArgument(`environment variable ${name}=${raw} is not valid: use ${range}`);
  }
  return value;
}

/** Parses and cross-checks the variables; throws an error naming each bad one. */
export function readRankEnvironment(env: NodeJS.ProcessEnv = process.env): RankEnvironment {
  const missing = ['RANK', 'WORLD_SIZE'].filter((name) => env[name] === undefined || env[name] === '');
  if (missing.length > 0) {
    throw invalidArgument(
      `missing environment variable(s) ${missing.join(', ')}: start ranks with mics-launch (or torchrun, srun, ` +
        'or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT yourself)',
    );
  }
  const worldSize = readInt(env, 'WORLD_SIZE', { min: 1 }) as number;
  const rank = readInt(env, 'RANK', { min: 0, max: worldSize - 1 }) as number;
  const localWorldSize = readInt(env, 'LOCAL_WORLD_SIZE', { min: 1, max: worldSize }) ?? worldSize;
  const localRank = readInt(env, 'LOCAL_RANK', { min: 0, max: localWorldSize - 1 }) ?? rank % localWorldSize;
  const node = readInt(env, 'GROUP_RANK', { min: 0 }) ?? Math.floor(rank / localWorldSize);
  if (worldSize > 1) {
    const needed = ['MASTER_ADDR', 'MASTER_PORT'].filter((name) => env[name] === undefined || env[name] === '');
    if (needed.length > 0) {
      throw invalidArgument(`missing environment variable(s) ${needed.join(', ')} (needed when WORLD_SIZE=${worldSize} > 1)`);
    }
  }
  const masterPort = readInt(env, 'MASTER_PORT', { min: 1, max: 65535 }) ?? 29500;
  const storeHosted = env.MICS_STORE_HOSTED === '1';
  const storeToken = env[STORE_TOKEN_ENV] === '' ? undefined : env[STORE_TOKEN_ENV];
  if (storeHosted && storeToken === undefined) {
    throw invalidArgument('MICS_STORE_HOSTED=1 but MICS_STORE_TOKEN is not set: the launcher exports both');
  }
  const runId = env.TORCHELASTIC_RUN_ID ?? 'default';
  const restart = readInt(env, 'TORCHELASTIC_RESTART_COUNT', { min: 0 }) ?? 0;
  const agentLocalRank = readInt(env, 'MICS_AGENT_LOCAL_RANK', { min: 0 }) ?? localRank;
  const errorFile = env[ERROR_FILE_ENV] === '' ? undefined : env[ERROR_FILE_ENV];
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize,
    node,
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort,
    storeToken,
    storeHosted,
    keyPrefix: `mics/${runId}/${restart}`,
    agentLocalRank,
    errorFile,
  };
}
