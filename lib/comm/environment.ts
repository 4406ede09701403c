/**
 * A rank's place in the job as torchrun-style environment variables: RANK, WORLD_SIZE,
 * LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT (+ MICS_STORE_TOKEN,
 * MICS_STORE_HOSTED, MICS_AGENT_LOCAL_RANK, MICS_ERROR_FILE from mics-launch). Both sides of
 * the contract live here: {@link rankEnvironment} writes the variables (every starter of ranks
 * uses it: mics-launch, the benchmarks' local ranks, the tests) and
 * {@link readRankEnvironment} reads them in init(). When torchrun's variables are absent the
 * reader falls back to the variables of the starters people already have: Open MPI's mpirun
 * (OMPI_COMM_WORLD_*), MPICH / Intel MPI (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, ...) and Slurm's
 * srun (SLURM_PROCID, SLURM_NTASKS, ...), with the rendezvous rules of {@link readExternalRanks}.
 * Pure: the environment is a value, so every case is unit-tested.
 */
import { invalidArgument } from '../core/errors';
import { MAX_WORLD_SIZE } from './groups';

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

/** Whose variables gave this rank its place: torchrun's names (mics-launch, torchrun, by hand), or an MPI or Slurm starter's. */
export type RankSource = 'torchrun' | 'open-mpi' | 'pmi' | 'slurm';

/** Where this process sits in the job. */
export interface RankEnvironment {
  /** Whose variables were read. */
  source: RankSource;
  /** One line saying which variables were used and where the rendezvous is (init() prints it on rank 0 for MPI and Slurm). */
  description: string;
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  /** Node rank (GROUP_RANK): ranks with the same node share memory. Provisional when {@link nodeFromHostname}. */
  node: number;
  /**
   * True when the starter names no node index (mpirun across several machines): init() then
   * numbers the nodes by host name, in the order of their lowest rank.
   */
  nodeFromHostname: boolean;
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

const present = (env: NodeJS.ProcessEnv, name: string): boolean => env[name] !== undefined && env[name] !== '';

/**
 * Parses and cross-checks the variables; throws an error naming each bad one. torchrun's
 * RANK/WORLD_SIZE win; without them, the variables of mpirun (Open MPI, MPICH, Intel MPI) or
 * srun are read ({@link readExternalRanks}).
 */
export function readRankEnvironment(env: NodeJS.ProcessEnv = process.env): RankEnvironment {
  if (!present(env, 'RANK') && !present(env, 'WORLD_SIZE')) {
    const external = readExternalRanks(env);
    if (external !== undefined) return external;
  }
  const missing = ['RANK', 'WORLD_SIZE'].filter((name) => !present(env, name));
  if (missing.length > 0) {
    throw invalidArgument(
      `missing environment variable(s) ${missing.join(', ')}, and no MPI or Slurm rank variables ` +
        '(OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID) either: start ranks with mics-launch, torchrun, mpirun or srun, ' +
        'or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT yourself',
    );
  }
  // Bounded as planGroups is: a job's arrays are world-sized.
  const worldSize = readInt(env, 'WORLD_SIZE', { min: 1, max: MAX_WORLD_SIZE }) as number;
  const rank = readInt(env, 'RANK', { min: 0, max: worldSize - 1 }) as number;
  const localWorldSize = readInt(env, 'LOCAL_WORLD_SIZE', { min: 1, max: worldSize }) ?? worldSize;
  const localRank = readInt(env, 'LOCAL_RANK', { min: 0, max: localWorldSize - 1 }) ?? rank % localWorldSize;
  const node = readInt(env, 'GROUP_RANK', { min: 0 }) ?? Math.floor(rank / localWorldSize);
  if (worldSize > 1) {
    const needed = ['MASTER_ADDR', 'MASTER_PORT'].filter((name) => !present(env, name));
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
  const masterAddr = env.MASTER_ADDR ?? '127.0.0.1';
  return {
    source: 'torchrun',
    description: `rank ${rank} of ${worldSize} from RANK/WORLD_SIZE; store on ${masterAddr}:${masterPort}`,
    rank,
    worldSize,
    localRank,
    localWorldSize,
    node,
    nodeFromHostname: false,
    masterAddr,
    masterPort,
    storeToken,
    storeHosted,
    keyPrefix: `mics/${runId}/${restart}`,
    agentLocalRank,
    errorFile,
  };
}

/** The variables of one external starter (see {@link readExternalRanks}). */
interface ExternalShape {
  source: Exclude<RankSource, 'torchrun'>;
  /** How the description names the variables. */
  label: string;
  rank: string;
  size: string;
  localRank?: string;
  localSize?: string;
}

/** Checked in this order: mpirun's per-rank variables beat the Slurm allocation's (mpirun inside sbatch inherits SLURM_PROCID=0). */
const EXTERNAL_SHAPES: readonly ExternalShape[] = [
  {
    source: 'open-mpi',
    label: 'Open MPI (OMPI_COMM_WORLD_*)',
    rank: 'OMPI_COMM_WORLD_RANK',
    size: 'OMPI_COMM_WORLD_SIZE',
    localRank: 'OMPI_COMM_WORLD_LOCAL_RANK',
    localSize: 'OMPI_COMM_WORLD_LOCAL_SIZE',
  },
  {
    source: 'pmi',
    label: 'MPICH / Intel MPI (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS)',
    rank: 'PMI_RANK',
    size: 'PMI_SIZE',
    localRank: 'MPI_LOCALRANKID',
    localSize: 'MPI_LOCALNRANKS',
  },
  { source: 'slurm', label: 'Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID)', rank: 'SLURM_PROCID', size: 'SLURM_NTASKS' },
];

/**
 * Slurm's tasks per node (`SLURM_STEP_TASKS_PER_NODE`, e.g. `4(x2),3`), expanded to one count
 * per node; undefined when the value is not in that form.
 */
export function parseTasksPerNode(value: string): number[] | undefined {
  const counts: number[] = [];
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)(?:\(x(\d+)\))?\s*$/.exec(part);
    if (!m) return undefined;
    const repeat = Number(m[2] ?? 1);
    if (repeat > 1_000_000) return undefined;
    for (let i = 0; i < repeat; i += 1) counts.push(Number(m[1]));
  }
  return counts;
}

/**
 * The first host of a Slurm node list (`node[07-09,12],gpu5` gives `node07`): every bracket
 * of the first entry replaced by its first number, zero padding kept. Undefined when malformed.
 */
export function firstSlurmHost(list: string): string | undefined {
  let depth = 0;
  let end = list.length;
  for (let i = 0; i < list.length; i += 1) {
    if (list[i] === '[') depth += 1;
    else if (list[i] === ']') depth -= 1;
    else if (list[i] === ',' && depth === 0) {
      end = i;
      break;
    }
    if (depth < 0 || depth > 1) return undefined;
  }
  const first = list.slice(0, end).trim();
  const host = first.replace(/\[\s*(\d+)[^\]]*\]/g, (_, n: string) => n);
  return host === '' || /[[\],\s]/.test(host) ? undefined : host;
}

/**
 * A port from a job id, the same on every rank of the job and different between jobs: the
 * last four digits + 15000 for a numeric id (as PyTorch Lightning does under Slurm), an FNV-1a
 * hash into the same range [15000, 25000) otherwise. Below Linux's ephemeral ports (32768+).
 */
export function portFromJobId(jobId: string): number {
  if (/^\d+$/.test(jobId)) return 15000 + Number(jobId.slice(-4));
  let hash = 0x811c9dc5;
  for (const ch of jobId) {
    hash ^= ch.charCodeAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return 15000 + (hash % 10000);
}

/**
 * A rank's place from mpirun's or srun's variables, or undefined when none of them is set.
 *
 * Rank 0 hosts the rendezvous store, as under any starter other than mics-launch. Its address
 * is MASTER_ADDR when set, else 127.0.0.1 when every rank is on one node, else the first host
 * of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST (mpirun or srun inside a Slurm allocation), else
 * an error saying to export MASTER_ADDR. The port is MASTER_PORT, else one derived from the job
 * id ({@link portFromJobId}: Open MPI's job id, else Slurm's job and step ids), else 29500. The
 * token is MICS_STORE_TOKEN (pass it with `mpirun -x MICS_STORE_TOKEN` or srun, which exports
 * the environment), else init() uses the development token and warns.
 */
export function readExternalRanks(env: NodeJS.ProcessEnv): RankEnvironment | undefined {
  const shape = EXTERNAL_SHAPES.find((s) => present(env, s.rank) || present(env, s.size));
  if (shape === undefined) return undefined;
  const missing = [shape.rank, shape.size].filter((name) => !present(env, name));
  if (missing.length > 0) {
    throw invalidArgument(`${shape.label}: missing environment variable(s) ${missing.join(', ')} (set by the starter on every rank)`);
  }
  const worldSize = readInt(env, shape.size, { min: 1, max: MAX_WORLD_SIZE }) as number;
  const rank = readInt(env, shape.rank, { min: 0, max: worldSize - 1 }) as number;

  let localWorldSize: number | undefined;
  let localRank: number | undefined;
  let node: number | undefined;
  let nodeCount: number | undefined;
  if (shape.source === 'slurm') {
    nodeCount = readInt(env, 'SLURM_STEP_NUM_NODES', { min: 1, max: worldSize }) ?? readInt(env, 'SLURM_NNODES', { min: 1, max: worldSize });
    node = readInt(env, 'SLURM_NODEID', { min: 0, max: (nodeCount ?? worldSize) - 1 });
    const perNode = env.SLURM_STEP_TASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE;
    const counts = perNode === undefined ? undefined : parseTasksPerNode(perNode);
    if (counts !== undefined && node !== undefined && node < counts.length) localWorldSize = counts[node];
    else if (nodeCount === 1) localWorldSize = worldSize;
    localRank = readInt(env, 'SLURM_LOCALID', { min: 0, max: (localWorldSize ?? worldSize) - 1 });
  } else {
    localWorldSize = readInt(env, shape.localSize as string, { min: 1, max: worldSize });
    localRank = readInt(env, shape.localRank as string, { min: 0, max: (localWorldSize ?? worldSize) - 1 });
    // Open MPI 4 says how many nodes the job has; no MPI starter says which one this rank is on.
    nodeCount = shape.source === 'open-mpi' ? readInt(env, 'OMPI_MCA_orte_num_nodes', { min: 1, max: worldSize }) : undefined;
  }
  const oneNode = worldSize === 1 || localWorldSize === worldSize || nodeCount === 1;
  if (oneNode) {
    node = 0;
    localWorldSize = worldSize;
    localRank ??= rank;
  }
  if (localRank === undefined || localWorldSize === undefined) {
    const names = shape.source === 'slurm' ? 'SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE' : `${shape.localRank}, ${shape.localSize}`;
    throw invalidArgument(`${shape.label}: rank ${rank} of ${worldSize} but no local rank and size (${names}); is this starter's version supported?`);
  }
  const nodeFromHostname = node === undefined;

  const jobId =
    shape.source === 'open-mpi'
      ? env.OMPI_MCA_ess_base_jobid || env.PMIX_NAMESPACE || undefined
      : present(env, 'SLURM_JOB_ID')
        ? `${env.SLURM_JOB_ID}${present(env, 'SLURM_STEP_ID') ? `.${env.SLURM_STEP_ID}` : ''}`
        : undefined;
  const nodeList = env.SLURM_STEP_NODELIST || env.SLURM_JOB_NODELIST || undefined;
  let masterAddr: string;
  let addrFrom: string;
  if (present(env, 'MASTER_ADDR')) {
    masterAddr = env.MASTER_ADDR as string;
    addrFrom = 'MASTER_ADDR';
  } else if (oneNode) {
    masterAddr = '127.0.0.1';
    addrFrom = 'every rank on one node';
  } else if (nodeList !== undefined && firstSlurmHost(nodeList) !== undefined) {
    masterAddr = firstSlurmHost(nodeList) as string;
    addrFrom = `first host of ${env.SLURM_STEP_NODELIST ? 'SLURM_STEP_NODELIST' : 'SLURM_JOB_NODELIST'}`;
  } else {
    throw invalidArgument(
      `${shape.label}: rank ${rank} of ${worldSize} spans several nodes and MASTER_ADDR is not set: ` +
        'export MASTER_ADDR=<host of rank 0> (and MASTER_PORT) to every rank, e.g. `mpirun -x MASTER_ADDR=node1 -x MASTER_PORT=29500 ...`',
    );
  }
  const explicitPort = readInt(env, 'MASTER_PORT', { min: 1, max: 65535 });
  const masterPort = explicitPort ?? (jobId !== undefined ? portFromJobId(jobId) : 29500);
  const portFrom = explicitPort !== undefined ? 'MASTER_PORT' : jobId !== undefined ? `from job id ${jobId}` : 'default';
  const storeToken = present(env, STORE_TOKEN_ENV) ? env[STORE_TOKEN_ENV] : undefined;
  const errorFile = present(env, ERROR_FILE_ENV) ? env[ERROR_FILE_ENV] : undefined;
  return {
    source: shape.source,
    description:
      `rank ${rank} of ${worldSize} from ${shape.label}; rank 0 hosts the store on ${masterAddr}:${masterPort} ` +
      `(address: ${addrFrom}; port: ${portFrom})` +
      (nodeFromHostname ? '; nodes told apart by host name' : ''),
    rank,
    worldSize,
    localRank,
    localWorldSize,
    node: node ?? 0,
    nodeFromHostname,
    masterAddr,
    masterPort,
    storeToken,
    storeHosted: false,
    keyPrefix: `mics/${jobId ?? 'default'}/0`,
    agentLocalRank: localRank,
    errorFile,
  };
}
