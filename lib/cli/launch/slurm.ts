/**
 * Slurm: the job layout from the SLURM_* variables srun sets, and an expander for Slurm's
 * compressed host lists (`node[01-03,07],gpu5`), so users need neither scontrol nor a
 * hand-written master address.
 */
import { UsageError } from './errors';

/** What a Slurm step tells one launcher about the job it belongs to. */
export interface SlurmLayout {
  /** Number of nodes (one launcher per node). */
  readonly nnodes: number;
  /** This launcher's node rank (the task's rank inside the step). */
  readonly nodeRank: number;
  /** First host of the step's node list: where node 0's agent hosts the store. */
  readonly masterAddr: string;
  /** Run id shared by all tasks of the step: `<job id>` or `<job id>.<step id>`. */
  readonly runId: string;
  /** Every host of the step, expanded, in node-rank order. */
  readonly hosts: readonly string[];
}

/** Slurm caps a single range at this many hosts; a bigger one is almost certainly a typo. */
const MAX_RANGE = 100000;

/** Splits at commas that are not inside brackets. */
function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of list) {
    if (ch === '[') depth += 1;
    if (ch === ']') depth -= 1;
    if (depth < 0) throw new UsageError(`invalid Slurm node list '${list}': ']' without '['`);
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw new UsageError(`invalid Slurm node list '${list}': '[' without ']'`);
  parts.push(current);
  return parts;
}

/** Expands the inside of one bracket (`01-03,07`) to its suffixes, keeping zero padding. */
function expandRanges(inner: string, whole: string): string[] {
  const out: string[] = [];
  for (const item of inner.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item.trim());
    if (!m) throw new UsageError(`invalid Slurm node list '${whole}': '${item}' is not N or N-M`);
    const first = m[1];
    const last = m[2] ?? m[1];
    const lo = Number(first);
    const hi = Number(last);
    if (hi < lo) throw new UsageError(`invalid Slurm node list '${whole}': range ${item} goes backwards`);
    if (hi - lo >= MAX_RANGE) throw new UsageError(`invalid Slurm node list '${whole}': range ${item} is too large`);
    // Slurm pads every number of a range to the width of its first bound when that has a leading zero.
    const width = first.length > 1 && first.startsWith('0') ? first.length : 0;
    for (let n = lo; n <= hi; n += 1) out.push(String(n).padStart(width, '0'));
  }
  return out;
}

/** Expands one host expression that may hold several bracket groups (`rack[1-2]-n[1-2]`). */
function expandHost(expr: string, whole: string): string[] {
  let results = [''];
  let rest = expr;
  while (rest.length > 0) {
    const open = rest.indexOf('[');
    if (open < 0) {
      results = results.map((r) => r + rest);
      break;
    }
    const close = rest.indexOf(']', open);
    const prefix = rest.slice(0, open);
    const suffixes = expandRanges(rest.slice(open + 1, close), whole);
    results = results.flatMap((r) => suffixes.map((s) => r + prefix + s));
    rest = rest.slice(close + 1);
  }
  return results;
}

/**
 * Expands a Slurm host list such as `node[01-03,07],gpu5` to
 * `['node01', 'node02', 'node03', 'node07', 'gpu5']`. Throws a {@link UsageError} naming the
 * list for unbalanced brackets, bad or backwards ranges and empty entries.
 */
export function expandNodelist(list: string): string[] {
  const trimmed = list.trim();
  if (trimmed === '') throw new UsageError('invalid Slurm node list: it is empty');
  const hosts: string[] = [];
  for (const part of splitTopLevel(trimmed)) {
    const host = part.trim();
    if (host === '') throw new UsageError(`invalid Slurm node list '${list}': empty entry`);
    hosts.push(...expandHost(host, list));
  }
  return hosts;
}

function intVar(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  // SLURM_TASKS_PER_NODE-like forms ("2(x3)") are not used here: every variable read is a plain count.
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`invalid ${name} '${raw}': expected a non-negative integer`);
  return Number(raw.trim());
}

/**
 * Reads the layout of the Slurm step this process runs in, or returns undefined when it is not
 * inside an `srun` step (no SLURM_JOB_ID or SLURM_PROCID; a plain `sbatch` script is not a step).
 * Step variables win over job variables because a step may use part of the allocation.
 * The launcher expects one task per node; anything else is a {@link UsageError} that says how to fix it.
 */
export function slurmLayout(env: NodeJS.ProcessEnv): SlurmLayout | undefined {
  const jobId = env.SLURM_JOB_ID ?? env.SLURM_JOBID;
  if (jobId === undefined || jobId === '' || env.SLURM_PROCID === undefined) return undefined;
  const list = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  if (list === undefined || list === '') {
    throw new UsageError('inside a Slurm step but none of SLURM_STEP_NODELIST, SLURM_JOB_NODELIST, SLURM_NODELIST is set');
  }
  const hosts = expandNodelist(list);
  const nnodes =
    intVar(env, 'SLURM_STEP_NUM_NODES') ?? intVar(env, 'SLURM_NNODES') ?? intVar(env, 'SLURM_JOB_NUM_NODES') ?? hosts.length;
  const ntasks = intVar(env, 'SLURM_STEP_NUM_TASKS') ?? intVar(env, 'SLURM_NTASKS') ?? nnodes;
  const procId = intVar(env, 'SLURM_PROCID') ?? 0;
  if (nnodes !== hosts.length) {
    throw new UsageError(`Slurm says ${nnodes} node(s) but its node list '${list}' names ${hosts.length}`);
  }
  if (ntasks !== nnodes) {
    throw new UsageError(
      `the Slurm step runs ${ntasks} task(s) on ${nnodes} node(s); mics-launch starts the ranks itself and ` +
        'needs exactly one task per node (srun --ntasks-per-node=1 mics-launch ...), or pass --no-slurm',
    );
  }
  if (procId >= nnodes) throw new UsageError(`SLURM_PROCID ${procId} is not below the node count ${nnodes}`);
  const stepId = env.SLURM_STEP_ID ?? env.SLURM_STEPID;
  return {
    nnodes,
    nodeRank: procId,
    masterAddr: hosts[0],
    runId: stepId !== undefined && stepId !== '' ? `${jobId}.${stepId}` : jobId,
    hosts,
  };
}
