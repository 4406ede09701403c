/** Options of `mics bench collectives`, in nccl-tests' vocabulary (-b -e -f -n -w -c -o -d). */
import { type DType, type ReduceOp, REDUCE_OPS } from '../../core/dtypes';
import { invalidArgument } from '../../core/errors';

export type BenchOp = 'all_gather' | 'reduce_scatter' | 'all_reduce' | 'broadcast';
export const BENCH_OPS: readonly BenchOp[] = ['all_gather', 'reduce_scatter', 'all_reduce', 'broadcast'];

/** The size sweep and iteration options every bench shares (-b -e -f -n -w -c). */
export interface SweepOptions {
  minBytes: number;
  maxBytes: number;
  stepFactor: number;
  iters: number;
  warmup: number;
  check: boolean;
}

/** Parsed options shared by every rank. */
export interface CollectivesBenchOptions extends SweepOptions {
  ops: BenchOp[];
  dtype: DType;
  redop: ReduceOp;
  root: number;
  /** -R 1: buffers from allocHost, read in place by same-node peers (nccl-tests' buffer registration). */
  register: boolean;
  /**
   * How a cell's time is taken: 'median' (default): the median over iterations of the
   * slowest rank's time for that iteration; 'mean': each rank times all iterations
   * back to back and divides by their number (the mean per call, as Open MPI's and
   * Gloo's loops report it), and the slowest rank's mean is reported.
   */
  timing: BenchTiming;
  json: boolean;
}

/** -T: median of per-iteration times, or mean per call over back-to-back calls. */
export type BenchTiming = 'median' | 'mean';

// nccl-tests type names and ours.
const DTYPE_NAMES: Record<string, DType> = {
  float: 'f32', float32: 'f32', f32: 'f32',
  double: 'f64', float64: 'f64', f64: 'f64',
  half: 'f16', float16: 'f16', f16: 'f16',
  bfloat16: 'bf16', bf16: 'bf16',
  int8: 'i8', char: 'i8', i8: 'i8',
  uint8: 'u8', u8: 'u8',
  int32: 'i32', int: 'i32', i32: 'i32',
  int64: 'i64', i64: 'i64',
};

/** nccl-tests' printed name of a dtype. */
export const NCCL_TYPE_NAME: Record<DType, string> = {
  f32: 'float', f64: 'double', f16: 'half', bf16: 'bfloat16', i8: 'int8', u8: 'uint8', i32: 'int32', i64: 'int64',
};

/** "64M" -> 67108864; K, M, G are powers of 1024 as in nccl-tests. */
export function parseSize(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)B?$/i.exec(text.trim());
  if (!match) throw invalidArgument(`${flag} ${text} is not a size: use bytes like 8, 1K, 64M or 1G`);
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2].toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Math.round(Number(match[1]) * scale);
}

function registerFlag(value: string | boolean | undefined): boolean {
  if (value === undefined || value === '0') return false;
  if (value === '1') return true;
  throw invalidArgument(`-R ${String(value)} is not valid: use 0 (ordinary buffers) or 1 (allocHost buffers)`);
}

function timingFlag(value: string | boolean | undefined): BenchTiming {
  if (value === undefined || value === 'median') return 'median';
  if (value === 'mean') return 'mean';
  throw invalidArgument(`-T ${String(value)} is not valid: use median (per-iteration, slowest rank) or mean (per call over back-to-back calls)`);
}

/** Raw commander values -> validated options. */
export function parseBenchOptions(raw: Record<string, string | boolean | undefined>): CollectivesBenchOptions {
  const int = (name: string, value: string | boolean | undefined, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw invalidArgument(`${name} ${String(value)} is not valid: use an integer >= ${min}`);
    return n;
  };
  const minBytes = parseSize(String(raw.minbytes ?? '8'), '-b');
  const maxBytes = parseSize(String(raw.maxbytes ?? '64M'), '-e');
  if (maxBytes < minBytes) throw invalidArgument(`-e ${String(raw.maxbytes)} is below -b ${String(raw.minbytes)}`);
  const stepFactor = int('-f', raw.stepfactor, 2, 2);
  const opName = String(raw.op ?? 'all');
  const ops = opName === 'all' ? [...BENCH_OPS] : opName.split(',').map((o) => o.trim() as BenchOp);
  for (const op of ops) {
    if (!BENCH_OPS.includes(op)) throw invalidArgument(`-o ${op} is not valid: use all or ${BENCH_OPS.join(', ')}`);
  }
  const dtypeName = String(raw.datatype ?? 'float');
  const dtype = DTYPE_NAMES[dtypeName];
  if (!dtype) throw invalidArgument(`-d ${dtypeName} is not valid: use one of ${Object.keys(DTYPE_NAMES).join(', ')}`);
  const redop = String(raw.redop ?? 'sum') as ReduceOp;
  if (!REDUCE_OPS.includes(redop)) throw invalidArgument(`-r ${redop} is not valid: use one of ${REDUCE_OPS.join(', ')}`);
  return {
    minBytes,
    maxBytes,
    stepFactor,
    iters: int('-n', raw.iters, 20, 1),
    warmup: int('-w', raw.warmupIters, 5, 0),
    check: int('-c', raw.check, 1, 0) !== 0,
    ops,
    dtype,
    redop,
    root: int('--root', raw.root, 0, 0),
    register: registerFlag(raw.local_register),
    timing: timingFlag(raw.timing),
    json: raw.json === true,
  };
}
