/**
 * `mics bench collectives` on every rank: nccl-tests' table (size, count, type,
 * redop, root, then time/algbw/busbw/#wrong out of place and in place). Time is
 * the median over iterations of the slowest rank's time for that iteration, or
 * with `-T mean` the slowest rank's mean per call over back-to-back calls.
 */
import type { Communicator } from '../../comm/communicator';
import { ARRAY_TYPES, elementBytes, toBFloat16Bits, toFloat16Bits, type DType, type HostTensor, type ReduceOp } from '../../core/dtypes';
import { allocHost } from '../../comm/host-memory';
import type { Tensor } from '../../comm/tensor';
import { DeviceTensor } from '../../cuda/device-tensor';
import { NCCL_TYPE_NAME, type BenchOp, type CollectivesBenchOptions } from './options';

/** One measured placement (out of place or in place). */
export interface BenchCell {
  timeUs: number;
  algbw: number;
  busbw: number;
  wrong: number;
}

/** One row of the table. */
export interface BenchRow {
  op: BenchOp;
  size: number;
  count: number;
  type: string;
  redop: string;
  root: number;
  outOfPlace: BenchCell;
  inPlace: BenchCell;
}

type Storage = Float32Array | Float64Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

function allocate(dtype: DType, count: number): Storage {
  return new ARRAY_TYPES[dtype](count);
}

/** The number as stored in `dtype` (rounded or wrapped), for exact comparison. */
function encode(dtype: DType, value: number): number | bigint {
  switch (dtype) {
    case 'f32': return Math.fround(value);
    case 'f64': return value;
    case 'f16': return toFloat16Bits(value);
    case 'bf16': return toBFloat16Bits(value);
    case 'i8': return ((((Math.trunc(value) % 256) + 256) % 256) << 24) >> 24;
    case 'u8': return ((Math.trunc(value) % 256) + 256) % 256;
    case 'i32': return Number(BigInt.asIntN(32, BigInt(Math.trunc(value))));
    case 'i64': return BigInt.asIntN(64, BigInt(Math.trunc(value)));
  }
}

/** Seeded input: small integers, so every reduction order gives the exact result. */
function inputValue(dtype: DType, rank: number, index: number): number {
  const v = (rank * 5 + index * 3) % 7;
  return dtype === 'u8' ? v : v - 3;
}

function fill(buffer: Storage, dtype: DType, rank: number, first = 0): void {
  for (let i = 0; i < buffer.length; i++) {
    (buffer as unknown as (number | bigint)[])[i] = encode(dtype, inputValue(dtype, rank, first + i));
  }
}

function reduce(op: ReduceOp, dtype: DType, n: number, index: number): number {
  let acc = inputValue(dtype, 0, index);
  for (let r = 1; r < n; r++) {
    const v = inputValue(dtype, r, index);
    if (op === 'sum' || op === 'avg') acc += v;
    else if (op === 'prod') acc *= v;
    else if (op === 'max') acc = Math.max(acc, v);
    else acc = Math.min(acc, v);
  }
  if (op !== 'avg') return acc;
  const isInt = dtype === 'i8' || dtype === 'u8' || dtype === 'i32' || dtype === 'i64';
  return isInt ? Math.trunc(acc / n) : acc / n;
}

function countWrong(buffer: Storage, expected: (i: number) => number | bigint): number {
  let wrong = 0;
  for (let i = 0; i < buffer.length; i++) {
    if ((buffer as unknown as (number | bigint)[])[i] !== expected(i)) wrong++;
  }
  return wrong;
}

function tensor(dtype: DType, data: Storage): HostTensor {
  return dtype === 'f16' || dtype === 'bf16' ? { data: data as Uint16Array, dtype } : data;
}

/**
 * A benchmark buffer: host memory, mirrored in device memory on the NCCL backend
 * (inputs are filled on the host and uploaded; results downloaded to check).
 */
class Mirror {
  private constructor(
    readonly host: Storage,
    private readonly dtype: DType,
    private readonly device: DeviceTensor | undefined,
  ) {}

  static alloc(world: Communicator, dtype: DType, count: number, register = false): Mirror {
    const device = world.backend === 'nccl' ? DeviceTensor.alloc(dtype, count) : undefined;
    return new Mirror(register && !device ? allocHost(dtype, count) : allocate(dtype, count), dtype, device);
  }

  view(begin: number, length: number): Mirror {
    return new Mirror(this.host.subarray(begin, begin + length) as Storage, this.dtype, this.device?.view(begin, length));
  }

  get tensor(): Tensor {
    return this.device ?? tensor(this.dtype, this.host);
  }

  upload(): void {
    this.device?.upload(this.host as never);
  }

  download(): Storage {
    this.device?.download(this.host as never);
    return this.host;
  }
}

/** Reduces small host arrays across ranks on either backend (timings, #wrong). */
async function reduceHost(world: Communicator, values: Float64Array, op: ReduceOp): Promise<void> {
  const m = Mirror.alloc(world, 'f64', values.length);
  (m.host as Float64Array).set(values);
  m.upload();
  await world.allReduce(m.tensor, { op });
  values.set(m.download() as Float64Array);
}

interface Case {
  count: number;
  size: number;
  busFactor: number;
  /** The op as a call with its arguments resolved once (the timed loops call it). */
  call(inPlace: boolean): () => Promise<void>;
  prepare(inPlace: boolean): void;
  wrong(inPlace: boolean): number;
}

function makeCase(world: Communicator, op: BenchOp, bytes: number, o: CollectivesBenchOptions): Case | undefined {
  const n = world.size, rank = world.rank, dtype = o.dtype, elem = elementBytes(dtype);
  const alloc = (count: number): Mirror => Mirror.alloc(world, dtype, count, o.register);
  const filled = (m: Mirror, who: number): void => {
    fill(m.host, dtype, who);
    m.upload();
  };
  if (op === 'all_gather' || op === 'reduce_scatter') {
    const count = Math.floor(bytes / elem / n);
    if (count === 0) return undefined;
    const full = alloc(count * n);
    const shard = alloc(count);
    const mine = full.view(rank * count, count);
    if (op === 'all_gather') {
      return {
        count: count * n, size: count * n * elem, busFactor: (n - 1) / n,
        prepare: (inPlace) => filled(inPlace ? mine : shard, rank),
        call: (inPlace) => {
          const input = (inPlace ? mine : shard).tensor;
          const output = full.tensor;
          return () => world.allGather(input, output);
        },
        wrong: () => countWrong(full.download(), (i) => encode(dtype, inputValue(dtype, Math.floor(i / count), i % count))),
      };
    }
    return {
      count: count * n, size: count * n * elem, busFactor: (n - 1) / n,
      prepare: () => filled(full, rank),
      call: (inPlace) => {
        const input = full.tensor;
        const output = (inPlace ? mine : shard).tensor;
        const options = { op: o.redop };
        return () => world.reduceScatter(input, output, options);
      },
      wrong: (inPlace) => {
        if (inPlace) full.download();
        return countWrong((inPlace ? mine : shard).download(), (i) => encode(dtype, reduce(o.redop, dtype, n, rank * count + i)));
      },
    };
  }
  const count = Math.floor(bytes / elem);
  if (count === 0) return undefined;
  const input = alloc(count);
  const output = alloc(count);
  if (op === 'all_reduce') {
    return {
      count, size: count * elem, busFactor: (2 * (n - 1)) / n,
      prepare: () => filled(input, rank),
      call: (inPlace) => {
        const send = input.tensor;
        const recv = output.tensor;
        const options = { op: o.redop };
        return inPlace ? () => world.allReduce(send, options) : () => world.allReduce(send, recv, options);
      },
      wrong: (inPlace) => countWrong((inPlace ? input : output).download(), (i) => encode(dtype, reduce(o.redop, dtype, n, i))),
    };
  }
  return {
    count, size: count * elem, busFactor: 1,
    prepare: () => filled(input, rank === o.root ? rank : rank + 1000),
    call: (inPlace) => {
      const send = input.tensor;
      const recv = output.tensor;
      const options = { root: o.root };
      return inPlace ? () => world.broadcast(send, options) : () => world.broadcast(send, recv, options);
    },
    wrong: (inPlace) => countWrong((inPlace ? input : output).download(), (i) => encode(dtype, inputValue(dtype, o.root, i))),
  };
}

async function measure(world: Communicator, c: Case, inPlace: boolean, o: CollectivesBenchOptions): Promise<BenchCell> {
  let wrong = 0;
  const run = c.call(inPlace);
  if (o.check) {
    c.prepare(inPlace);
    await run();
    wrong = c.wrong(inPlace);
  }
  c.prepare(inPlace);
  for (let i = 0; i < o.warmup; i++) await run();
  await world.barrier();
  let timeUs: number;
  if (o.timing === 'mean') {
    // Back to back, one clock around all of them: the per-call cost as a loop of
    // small collectives (or a peer's benchmark loop) sees it.
    const start = process.hrtime.bigint();
    for (let i = 0; i < o.iters; i++) await run();
    const mean = Float64Array.of(Number(process.hrtime.bigint() - start) / 1e3 / o.iters);
    await reduceHost(world, mean, 'max');
    timeUs = mean[0];
  } else {
    const times = new Float64Array(o.iters);
    for (let i = 0; i < o.iters; i++) {
      const start = process.hrtime.bigint();
      await run();
      times[i] = Number(process.hrtime.bigint() - start) / 1e3;
    }
    await reduceHost(world, times, 'max');
    const sorted = Array.from(times).sort((a, b) => a - b);
    timeUs = sorted[Math.floor(sorted.length / 2)];
  }
  const totals = Float64Array.of(wrong);
  await reduceHost(world, totals, 'sum');
  const algbw = c.size / (timeUs * 1e-6) / 1e9;
  return { timeUs, algbw, busbw: algbw * c.busFactor, wrong: totals[0] };
}

/** Runs the sweep on every rank; returns the rows (identical on every rank). */
export async function runCollectivesBench(world: Communicator, o: CollectivesBenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const op of o.ops) {
    if (op === 'broadcast' && o.root >= world.size) continue;
    for (let bytes = o.minBytes; bytes <= o.maxBytes; bytes *= o.stepFactor) {
      const c = makeCase(world, op, bytes, o);
      if (!c) continue;
      const outOfPlace = await measure(world, c, false, o);
      const inPlace = await measure(world, c, true, o);
      const reduces = op === 'reduce_scatter' || op === 'all_reduce';
      rows.push({
        op, size: c.size, count: c.count, type: NCCL_TYPE_NAME[o.dtype], redop: reduces ? o.redop : 'none',
        root: op === 'broadcast' ? o.root : -1, outOfPlace, inPlace,
      });
    }
  }
  return rows;
}

const pad = (s: string | number, w: number): string => String(s).padStart(w);
const cell = (c: BenchCell): string =>
  `${pad(c.timeUs.toFixed(1), 10)} ${pad(c.algbw.toFixed(2), 7)} ${pad(c.busbw.toFixed(2), 7)} ${pad(o2(c.wrong), 6)}`;
function o2(wrong: number): string {
  return String(wrong);
}

/** Calls after which V8 has compiled a collective's JavaScript path (measured: docs/benchmarks.md). */
export const STEADY_STATE_CALLS = 10_000;

/**
 * A note for the text output when the sweep starts at a small size with fewer warm-up
 * calls than that: its first rows time V8 interpreting and compiling the call path.
 */
export function warmupNote(o: Pick<CollectivesBenchOptions, 'minBytes' | 'warmup'>): string | undefined {
  if (o.warmup >= STEADY_STATE_CALLS || o.minBytes > 64 * 1024) return undefined;
  return (
    `# note: a fresh process runs its first ~${STEADY_STATE_CALLS} calls while V8 interprets and compiles the call path, ` +
    `so the first small rows here time that start-up; -w ${2 * STEADY_STATE_CALLS} measures the per-call cost of a running job`
  );
}

/** nccl-tests-style text for one op's rows. */
export function formatTable(op: BenchOp, rows: BenchRow[], header: string): string {
  const lines = [
    `# ${op}: ${header}`,
    '#',
    `# ${pad('', 54)}${pad('out-of-place', 24)}${pad('in-place', 32)}`,
    `# ${pad('size', 10)} ${pad('count', 12)} ${pad('type', 8)} ${pad('redop', 6)} ${pad('root', 5)} ${pad('time', 10)} ${pad('algbw', 7)} ${pad('busbw', 7)} ${pad('#wrong', 6)} ${pad('time', 10)} ${pad('algbw', 7)} ${pad('busbw', 7)} ${pad('#wrong', 6)}`,
    `# ${pad('(B)', 10)} ${pad('(elements)', 12)} ${pad('', 8)} ${pad('', 6)} ${pad('', 5)} ${pad('(us)', 10)} ${pad('(GB/s)', 7)} ${pad('(GB/s)', 7)} ${pad('', 6)} ${pad('(us)', 10)} ${pad('(GB/s)', 7)} ${pad('(GB/s)', 7)} ${pad('', 6)}`,
  ];
  for (const r of rows.filter((row) => row.op === op)) {
    lines.push(
      `  ${pad(r.size, 10)} ${pad(r.count, 12)} ${pad(r.type, 8)} ${pad(r.redop, 6)} ${pad(r.root, 5)} ${cell(r.outOfPlace)} ${cell(r.inPlace)}`,
    );
  }
  const mine = rows.filter((row) => row.op === op);
  const wrong = mine.reduce((sum, r) => sum + r.outOfPlace.wrong + r.inPlace.wrong, 0);
  const avg = mine.length ? mine.reduce((sum, r) => sum + r.outOfPlace.busbw + r.inPlace.busbw, 0) / (2 * mine.length) : 0;
  lines.push(`# Out of bounds values : ${wrong} ${wrong === 0 ? 'OK' : 'FAILED'}`);
  lines.push(`# Avg bus bandwidth    : ${avg.toFixed(3)}`);
  return lines.join('\n');
}
