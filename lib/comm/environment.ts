/**
 * Reads a rank's place in the job from torchrun-style environment variables:
 * RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR,
 * MASTER_PORT (+ MICS_STORE_TOKEN, MICS_STORE_HOSTED from mics-launch). Pure: the
 * environment is a parameter, so every error case is unit-tested.
 */
import { invalidArgument } from '../core/errors';

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
  const storeToken = env.MICS_STORE_TOKEN === '' ? undefined : env.MICS_STORE_TOKEN;
  if (storeHosted && storeToken === undefined) {
    throw invalidArgument('MICS_STORE_HOSTED=1 but MICS_STORE_TOKEN is not set: the launcher exports both');
  }
  const runId = env.TORCHELASTIC_RUN_ID ?? 'default';
  const restart = readInt(env, 'TORCHELASTIC_RESTART_COUNT', { min: 0 }) ?? 0;
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
  };
}
