/** Resolves --nproc-per-node auto|gpu|cpu to a count from the GPUs and cores of this machine. */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import { UsageError } from './errors';

/** What --nproc-per-node accepts: a count or one of the torchrun keywords. */
export type NprocSpec = number | 'auto' | 'gpu' | 'cpu';

/**
 * Counts the GPUs this process may use: the entries of `nvidia-smi -L`, narrowed by
 * CUDA_VISIBLE_DEVICES when it is set (as CUDA itself would). No nvidia-smi, or one that fails,
 * means no GPU: a CPU-only machine must still launch.
 */
export function countGpus(env: NodeJS.ProcessEnv = process.env): number {
  let listed: number;
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 15000, stdio: ['ignore', 'pipe', 'ignore'] });
    listed = out.split('\n').filter((l) => /^GPU \d+:/.test(l.trim())).length;
  } catch {
    return 0;
  }
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible === undefined) return listed;
  const entries = visible.split(',').map((s) => s.trim()).filter((s) => s !== '');
  // CUDA stops at the first invalid entry ("-1" is the usual way to hide every GPU).
  const valid: string[] = [];
  for (const e of entries) {
    if (e.startsWith('-')) break;
    valid.push(e);
  }
  return Math.min(valid.length, listed);
}

/** Cores this process may use. */
export function countCpus(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * Turns an --nproc-per-node value into a count: auto = GPUs if any, else one per core;
 * gpu = the GPU count (an error when there is none); cpu = one per core.
 */
export function resolveNproc(spec: NprocSpec, gpus: () => number = countGpus, cpus: () => number = countCpus): number {
  if (typeof spec === 'number') return spec;
  if (spec === 'cpu') return cpus();
  const g = gpus();
  if (spec === 'gpu') {
    if (g === 0) throw new UsageError("--nproc-per-node gpu: no GPU found (nvidia-smi -L lists none); use a number, 'auto' or 'cpu'");
    return g;
  }
  return g > 0 ? g : cpus();
}
