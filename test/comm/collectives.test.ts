/**
 * The CPU backend's collectives are exact: every op x dtype x reduction, in place and
 * out of place and through views, at sizes that cross every algorithm and chunk
 * boundary, on real processes over shared memory (one node) and over the TCP ring
 * (emulated nodes). Each rank computes its inputs and the exact expected output itself
 * (test/fixtures/comm/reference.js) and reports the number of wrong elements per case,
 * like nccl-tests -c; a case also fails if it wrote outside its output (guards) or
 * changed its input out of place.
 *
 * Float inputs include special values, in columns built so that the exact result does
 * not depend on the order ranks are combined in (the ring's order is not the rank
 * order): NaN (a reduction's NaN must be a NaN; max/min propagate it), +-Inf, -0,
 * subnormals, values with every mantissa bit in use (max/min, copies, and sums where
 * one rank contributes and the others add zeros), and sums that overflow the f32
 * accumulator (or f64) to Inf. reference.js describes the columns.
 *
 * Boundaries: 1 element; counts not divisible by the rank count (7, 32769, 100003);
 * one element over the shared-memory reduction pass of 8192 elements (32769 on 4 ranks
 * gives slices of 8192 and 8193); reductions and broadcasts over several rounds of the
 * default 1 MiB staging buffer (allReduce 900001 f32 on 4 ranks, reduceScatter 262145
 * f32 per rank, broadcast and allGather 524289 f64 = 4 MiB + 8 bytes); more than one
 * 256 KiB TCP frame per ring step (300007 f32: ring partials travel in f32, also for
 * bf16); and a run with MICS_SHM_STAGING_BYTES=4096 where every op takes many rounds
 * and the last round carries a few bytes. Ops whose data fits 64 KiB (counts 1 and
 * 7 at every dtype and reduction; 16384 f32 exactly) are small ops, posted inline
 * with one sync; one element more is staged. Inputs from allocHost take the direct
 * algorithms (peers read them in place) above the small-op size: the same checks,
 * plus the count of ops that really ran direct.
 */
import { describeRanks, killAllRanks, processAlive, runRanks, shmSegmentsOf, type RankResult } from '../helpers/ranks';

const ALL_DTYPES = ['f32', 'f64', 'f16', 'bf16', 'i8', 'u8', 'i32', 'i64'];
const ALL_REDOPS = ['sum', 'avg', 'max', 'min', 'prod'];
const REDUCING = ['allReduce', 'reduceScatter'];
const MOVING = ['allGather', 'broadcast'];

interface Group {
  ops: string[];
  dtypes: string[];
  redops?: string[];
  counts: number[];
  variants: string[];
  roots?: 'ends' | 'all';
  /** 'registered': every buffer from allocHost; 'mixed': only on even ranks (worker.js runCase). */
  memory?: 'host' | 'registered' | 'mixed';
}

/** Every op x dtype x reduction; in place / views on a subset of sizes. */
const FULL: Group[] = [
  { ops: REDUCING, dtypes: ALL_DTYPES, redops: ALL_REDOPS, counts: [1, 7, 32769], variants: ['oop'] },
  { ops: REDUCING, dtypes: ALL_DTYPES, redops: ALL_REDOPS, counts: [7], variants: ['inplace'] },
  { ops: REDUCING, dtypes: ALL_DTYPES, redops: ['sum'], counts: [32769], variants: ['inplace'] },
  { ops: MOVING, dtypes: ALL_DTYPES, counts: [1, 7, 32769], variants: ['oop', 'inplace', 'view'] },
  { ops: REDUCING, dtypes: ['f32', 'f16', 'i8', 'i64'], redops: ['sum'], counts: [100003], variants: ['view', 'inplace-view'] },
  { ops: ['allReduce'], dtypes: ['f32', 'bf16'], redops: ['sum', 'max'], counts: [300007], variants: ['oop'] },
  { ops: ['broadcast'], dtypes: ['u8'], counts: [300007], variants: ['oop'] },
  { ops: ['allGather'], dtypes: ['f64'], counts: [524289], variants: ['inplace-view'] },
  { ops: ['broadcast'], dtypes: ['f64'], counts: [524289], variants: ['inplace'] },
  { ops: ['allReduce'], dtypes: ['f32'], redops: ['sum'], counts: [900001], variants: ['inplace'] },
  { ops: ['reduceScatter'], dtypes: ['f32'], redops: ['sum'], counts: [262145], variants: ['oop'] },
  // The largest small op (64 KiB posted inline) and one element more (staged).
  { ops: ['allReduce', 'allGather', 'broadcast'], dtypes: ['f32'], redops: ['sum', 'avg'], counts: [16384, 16385], variants: ['oop', 'inplace'] },
  { ops: ['reduceScatter'], dtypes: ['f32'], redops: ['sum'], counts: [4096, 4097], variants: ['oop', 'inplace'] },
];

/** A smaller matrix for the other world sizes: every op, four dtypes, every reduction, every broadcast root. */
const SMALL: Group[] = [
  { ops: REDUCING, dtypes: ['f32', 'bf16', 'i8', 'i64'], redops: ALL_REDOPS, counts: [1, 7], variants: ['oop', 'inplace'] },
  { ops: REDUCING, dtypes: ['f32', 'bf16', 'i8', 'i64'], redops: ['sum', 'max'], counts: [32769], variants: ['oop'] },
  { ops: MOVING, dtypes: ['f32', 'f16', 'u8', 'i64'], counts: [1, 7, 32769], variants: ['oop', 'inplace'], roots: 'all' },
];

/** Every op through a tiny staging buffer: many rounds, and a last round of a few bytes. */
const STAGED: Group[] = [
  { ops: ['allGather'], dtypes: ['f32', 'u8', 'f64'], counts: [1, 1024, 1025, 4097, 32769], variants: ['oop', 'inplace', 'view', 'inplace-view'] },
  { ops: ['broadcast'], dtypes: ['f32', 'u8'], counts: [1, 1024, 1025, 10007, 70001], variants: ['oop', 'inplace'], roots: 'all' },
  { ops: REDUCING, dtypes: ['f32', 'f16', 'i64', 'u8'], redops: ['sum', 'avg', 'max'], counts: [1, 7, 383, 1025, 10007, 70001], variants: ['oop', 'inplace'] },
];

/**
 * Inputs from allocHost, read in place by the peers: every op that reads inputs
 * directly (allGather, reduceScatter, allReduce) x dtype x reduction, in place and
 * through views, at 1 element, uneven counts and several 4 KiB direct rounds when
 * the staging buffer is small; broadcast still stages.
 */
const REGISTERED: Group[] = [
  { ops: REDUCING, dtypes: ALL_DTYPES, redops: ALL_REDOPS, counts: [1, 7, 32769], variants: ['oop'], memory: 'registered' },
  { ops: REDUCING, dtypes: ALL_DTYPES, redops: ['sum', 'max'], counts: [7, 32769], variants: ['inplace'], memory: 'registered' },
  { ops: ['allGather'], dtypes: ALL_DTYPES, counts: [1, 7, 32769], variants: ['oop', 'inplace'], memory: 'registered' },
  { ops: [...REDUCING, 'allGather'], dtypes: ['f32', 'bf16', 'i64'], redops: ['sum', 'avg'], counts: [100003], variants: ['view', 'inplace-view'], memory: 'registered' },
  { ops: ['broadcast'], dtypes: ['f32'], counts: [7, 32769], variants: ['oop'], memory: 'registered' },
];

/** The same ops where only the even ranks' buffers come from allocHost: staged, still exact. */
const MIXED: Group[] = [
  { ops: REDUCING, dtypes: ['f32', 'f16', 'i32'], redops: ['sum', 'max'], counts: [1, 7, 32769], variants: ['oop', 'inplace'], memory: 'mixed' },
  { ops: ['allGather'], dtypes: ['f32', 'u8'], counts: [1, 32769], variants: ['oop', 'inplace', 'view'], memory: 'mixed' },
];

const ELEMENT_BYTES: Record<string, number> = { f32: 4, f64: 8, f16: 2, bf16: 2, i8: 1, u8: 1, i32: 4, i64: 8 };
/** Bytes a rank may post inline with a small op (ShmGroup::kSmallBytes). */
const SMALL_OP_BYTES = 64 * 1024;

/**
 * Whether a case is a small op on shared memory: its data travels inline in the
 * control segment with one sync (csrc/cpu/shm_small.cc), whatever memory it is in.
 * What a rank posts: its buffer, or for reduceScatter its whole input.
 */
function isSmallOp(op: string, dtype: string, count: number, n: number): boolean {
  return count * ELEMENT_BYTES[dtype] * (op === 'reduceScatter' ? n : 1) <= SMALL_OP_BYTES;
}

/**
 * The number of cases of these ops a rank runs for these groups in a world of n ranks
 * (mirrors the worker's loops); `large`: only those above the small-op size.
 */
function caseCount(groups: Group[], n: number, ops?: string[], large = false): number {
  let total = 0;
  for (const g of groups) {
    for (const op of g.ops) {
      if (ops && !ops.includes(op)) continue;
      const redops = REDUCING.includes(op) ? (g.redops ?? []).length : 1;
      const roots = op === 'broadcast' ? (g.roots === 'all' ? n : new Set([0, n - 1]).size) : 1;
      for (const dtype of g.dtypes) {
        const counts = g.counts.filter((count) => !large || !isSmallOp(op, dtype, count, n)).length;
        total += redops * counts * g.variants.length * roots;
      }
    }
  }
  return total;
}

afterAll(() => killAllRanks());

/**
 * Runs the matrix on n real ranks and checks that every rank ran every case and got
 * every element right. Failing cases are listed with the first wrong element.
 */
async function expectExactMatrix(
  n: number,
  groups: Group[],
  opts: {
    nodes?: number | number[];
    transport: string;
    env?: NodeJS.ProcessEnv;
    rankEnv?: (rank: number) => NodeJS.ProcessEnv;
    timeoutMs?: number;
  },
): Promise<RankResult[]> {
  const results = await runRanks({
    n,
    nodes: opts.nodes,
    env: opts.env,
    rankEnv: opts.rankEnv,
    args: ['matrix', JSON.stringify({ groups })],
    timeoutMs: opts.timeoutMs ?? 150000,
  });
  const summary = describeRanks(results);
  for (const r of results) {
    if (r.code !== 0 || r.json === undefined || r.json.fatal || r.json.initError) {
      throw new Error(`rank ${r.rank} did not finish the matrix:\n${summary}\n${JSON.stringify(r.json ?? {}).slice(0, 2000)}`);
    }
  }
  const expectedCases = caseCount(groups, n);
  const problems: string[] = [];
  for (const r of results) {
    expect(r.json.transport).toBe(opts.transport);
    const ran = Object.keys(r.json.results).length;
    if (ran !== expectedCases) problems.push(`rank ${r.rank} ran ${ran} cases, expected ${expectedCases}`);
    for (const f of r.json.failures as Array<Record<string, unknown>>) {
      const what = f.error
        ? `threw ${JSON.stringify(f.error)}`
        : `${f.wrong} wrong elements, input changed: ${f.inputClobbered}, guards overwritten: ${f.guardsClobbered}` +
          (f.first ? `, first wrong ${JSON.stringify(f.first)}` : '');
      problems.push(`rank ${r.rank}: ${f.case}: ${what}`);
    }
  }
  expect(problems.join('\n')).toBe('');
  // The ranks left nothing behind: no process, no shared-memory segment.
  const pids = results.map((r) => r.pid);
  expect(pids.filter(processAlive)).toEqual([]);
  expect(shmSegmentsOf(pids)).toEqual([]);
  return results;
}

describe('collectives are exact for every op x dtype x reduction (4 ranks)', () => {
  it('over shared memory on one node: full matrix, in place, views, multi-chunk and multi-round sizes', async () => {
    await expectExactMatrix(4, FULL, { transport: 'shm' });
  }, 200000);

  it('over the TCP ring between 2 emulated nodes x 2 ranks: the same full matrix', async () => {
    await expectExactMatrix(4, FULL, { nodes: 2, transport: 'tcp' });
  }, 200000);
});

describe('collectives are exact at every world size from 1 to 8', () => {
  it.each([
    [1, 'self'],
    [2, 'shm'],
    [3, 'shm'],
    [5, 'shm'],
    [8, 'shm'],
  ])('%i rank(s) on one node (%s): every op and reduction on four dtypes, every broadcast root', async (n, transport) => {
    await expectExactMatrix(n, SMALL, { transport });
  }, 200000);

  it('3 ranks on 2 emulated nodes (an uneven TCP ring: nodes 0, 1, 1)', async () => {
    await expectExactMatrix(3, SMALL, { nodes: [0, 1, 1], transport: 'tcp' });
  }, 200000);
});

describe('small ops (data inline, one sync) on the progress thread', () => {
  it('are exact with MICS_SHM_INLINE_US=0 (no op runs on the calling thread): every op and reduction on four dtypes at 3 ranks', async () => {
    await expectExactMatrix(3, SMALL, { transport: 'shm', env: { MICS_SHM_INLINE_US: '0' } });
  }, 200000);
});

describe('the reduction loops are compiled for the baseline target and for AVX2 (picked at run time)', () => {
  it('give the same bytes with MICS_KERNELS=baseline: every op and reduction on four dtypes at 3 ranks, and halves at 2 emulated nodes', async () => {
    await expectExactMatrix(3, SMALL, { transport: 'shm', env: { MICS_KERNELS: 'baseline' } });
    const halves: Group[] = [{ ops: REDUCING, dtypes: ['f16', 'bf16'], redops: ALL_REDOPS, counts: [7, 32769], variants: ['oop'] }];
    await expectExactMatrix(4, halves, { nodes: 2, transport: 'tcp', env: { MICS_KERNELS: 'baseline' } });
  }, 200000);
});

describe('shared-memory collectives in many staging rounds', () => {
  it('are exact when MICS_SHM_STAGING_BYTES=4096 forces a round per few KiB, including last rounds of a few bytes', async () => {
    await expectExactMatrix(3, STAGED, { transport: 'shm', env: { MICS_SHM_STAGING_BYTES: '4096' } });
  }, 200000);
});

describe('inputs from allocHost are read in place by the peers (direct shared-memory algorithms)', () => {
  const directOps = (results: RankResult[]): number[] => results.map((r) => r.json.directOps as number);
  const readingInputs = ['allGather', 'reduceScatter', 'allReduce'];

  it('are exact for every op x dtype x reduction, in place and through views, and every such op above the small-op size ran direct', async () => {
    const results = await expectExactMatrix(4, REGISTERED, { transport: 'shm' });
    const large = caseCount(REGISTERED, 4, readingInputs, true);
    expect(large).toBeGreaterThan(50);
    expect(directOps(results)).toEqual(Array(4).fill(large));
  }, 200000);

  it('are exact in many direct allReduce rounds (MICS_SHM_STAGING_BYTES=4096) at 3 and 8 ranks', async () => {
    const groups: Group[] = [
      { ops: REDUCING, dtypes: ['f32', 'f16', 'i64', 'u8'], redops: ['sum', 'avg', 'max'], counts: [1, 383, 1025, 40009], variants: ['oop', 'inplace'], memory: 'registered' },
    ];
    for (const n of [3, 8]) {
      const results = await expectExactMatrix(n, groups, { transport: 'shm', env: { MICS_SHM_STAGING_BYTES: '4096' } });
      expect(directOps(results)).toEqual(Array(n).fill(caseCount(groups, n, readingInputs, true)));
    }
  }, 200000);

  it('fall back to staging, exactly, when only some ranks registered their input', async () => {
    const results = await expectExactMatrix(4, MIXED, { transport: 'shm' });
    expect(directOps(results)).toEqual([0, 0, 0, 0]);
  }, 200000);

  it('stage as usual with MICS_SHM_DIRECT=0 on one rank, or over the TCP ring', async () => {
    const groups: Group[] = [
      { ops: [...REDUCING, 'allGather'], dtypes: ['f32', 'bf16'], redops: ['sum'], counts: [7, 32769], variants: ['oop', 'inplace'], memory: 'registered' },
    ];
    const oneOptedOut = await expectExactMatrix(4, groups, {
      transport: 'shm',
      rankEnv: (rank) => (rank === 2 ? { MICS_SHM_DIRECT: '0' } : {}),
    });
    expect(directOps(oneOptedOut)).toEqual([0, 0, 0, 0]);
    const overTcp = await expectExactMatrix(4, groups, { nodes: 2, transport: 'tcp' });
    expect(directOps(overTcp)).toEqual([0, 0, 0, 0]);
  }, 200000);
});

describe('the reference itself', () => {
  // The worker's expected values come from reference.js: check its definitions on
  // hand-computed cases so a wrong reference cannot hide a wrong backend.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ref = require('../fixtures/comm/reference.js');

  it('wraps integer sums and products and truncates integer averages toward zero', () => {
    expect(ref.reduceValues('i8', 'sum', [100, 100])).toBe(-56);
    expect(ref.reduceValues('u8', 'sum', [200, 100])).toBe(44);
    expect(ref.reduceValues('i8', 'avg', [-128, 0, 0])).toBe(-42);
    expect(ref.reduceValues('u8', 'avg', [200, 100])).toBe(22); // (300 mod 256) / 2
    expect(ref.reduceValues('i32', 'sum', [0x7fffffff, 1])).toBe(-0x80000000);
    expect(ref.reduceValues('i32', 'prod', [0x10000, 0x10000])).toBe(0);
    expect(ref.reduceValues('i64', 'sum', [0x7fffffffffffffffn, 1n])).toBe(-0x8000000000000000n);
    expect(ref.reduceValues('i64', 'avg', [-7n, 0n])).toBe(-3n);
    expect(ref.reduceValues('u8', 'prod', [16, 17])).toBe(16);
  });

  it('rounds half-precision results once, from the exact f32 result', () => {
    // 2049 is not a float16: the exact sum rounds to 2048 (ties to even).
    expect(ref.reduceValues('f16', 'sum', [1024, 1024, 1])).toBe(0x6800);
    // bf16 keeps 8 significant bits: 257 rounds to 256, 259 to 260.
    expect(ref.reduceValues('bf16', 'sum', [256, 1])).toBe(0x4380);
    expect(ref.reduceValues('bf16', 'sum', [256, 3])).toBe(0x4382);
    expect(ref.reduceValues('f32', 'avg', [1, 0, 0])).toBe(Math.fround(1 / 3));
    expect(ref.reduceValues('f64', 'avg', [1, 0, 0])).toBe(1 / 3);
  });

  it('propagates NaN through max and min, orders -0 below +0, and lets Inf and NaN through sums and products', () => {
    const f32 = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
    expect(ref.reduceValues('f32', 'max', [NaN, 1])).toBeNaN();
    expect(ref.reduceValues('f32', 'max', [1, NaN, 2])).toBeNaN();
    expect(ref.reduceValues('f64', 'min', [-Infinity, NaN])).toBeNaN();
    expect(Object.is(ref.reduceValues('f32', 'max', [-0, 0]), 0)).toBe(true);
    expect(Object.is(ref.reduceValues('f32', 'max', [0, -0]), 0)).toBe(true);
    expect(Object.is(ref.reduceValues('f64', 'min', [0, -0]), -0)).toBe(true);
    const f16 = ref.reduceValues('f16', 'max', [1, NaN]);
    expect([(f16 & 0x7c00) === 0x7c00, (f16 & 0x3ff) !== 0]).toEqual([true, true]); // an f16 NaN
    expect(ref.reduceValues('bf16', 'min', [-0, 0])).toBe(0x8000);
    expect(ref.reduceValues('f32', 'sum', [Infinity, -Infinity])).toBeNaN();
    expect(ref.reduceValues('f32', 'sum', [Infinity, 1, 2])).toBe(Infinity);
    expect(ref.reduceValues('f32', 'prod', [Infinity, 0])).toBeNaN();
    expect(Object.is(ref.reduceValues('f64', 'sum', [-0, -0]), -0)).toBe(true);
    expect(Object.is(ref.reduceValues('f64', 'sum', [-0, 0]), 0)).toBe(true);
    expect(Object.is(ref.reduceValues('f32', 'prod', [-0, 2, -1]), 0)).toBe(true);
    // subnormal sums are exact
    expect(ref.reduceValues('f32', 'sum', [f32(1), f32(2), f32(1)])).toBe(f32(4));
    expect(ref.reduceValues('f16', 'sum', [0x1 * 2 ** -24, 3 * 2 ** -24])).toBe(0x0004);
  });

  it('overflows where the accumulator does: f32 for f32, f16 and bf16, f64 for f64', () => {
    // f16 sums accumulate in f32 (no overflow there) and round to Inf at the end ...
    expect(ref.reduceValues('f16', 'sum', [49120, 49120])).toBe(0x7c00);
    // ... while their average fits again.
    expect(ref.reduceValues('f16', 'avg', [49120, 49120])).toBe(0x79ff);
    // bf16 has f32's range: the f32 accumulator itself overflows, so the average is Inf too.
    expect(ref.reduceValues('bf16', 'sum', [2.5e38, 2.5e38])).toBe(0x7f80);
    expect(ref.reduceValues('bf16', 'avg', [2.5e38, 2.5e38])).toBe(0x7f80);
    expect(ref.reduceValues('f32', 'avg', [3e38, 3e38])).toBe(Infinity);
    expect(ref.reduceValues('f64', 'avg', [3e38, 3e38])).toBe(3e38);
  });

  it('puts every kind of special column into the inputs, as values exact in their dtype', () => {
    const kinds = new Set<string>();
    for (let i = 0; i < 400; i++) kinds.add(ref.columnKind('sum', i, 99));
    expect([...kinds].sort()).toEqual(['inf', 'nan', 'normal', 'overflow', 'sparse', 'subnormal', 'zeros']);
    const seen = { nan: 0, inf: 0, negZero: 0, subnormal: 0 };
    for (const dtype of ['f32', 'f64', 'f16', 'bf16']) {
      for (let i = 0; i < 400; i++) {
        for (let r = 0; r < 4; r++) {
          const v = ref.valueOf(dtype, 'max', r, i, 99);
          if (Number.isNaN(v)) seen.nan++;
          else if (!Number.isFinite(v)) seen.inf++;
          else if (Object.is(v, -0)) seen.negZero++;
          else if (v !== 0 && Math.abs(v) < ref.MIN_SUBNORMAL[dtype] * 8) seen.subnormal++;
          // exact in the dtype: storing it and reading it back gives it again
          const one = new ref.ARRAY[dtype](1);
          one[0] = ref.stored(dtype, v);
          const back = dtype === 'f16' || dtype === 'bf16' ? one[0] === ref.stored(dtype, v) : Object.is(one[0], v);
          if (!back) throw new Error(`${dtype} value ${v} is not exact in its dtype`);
        }
      }
    }
    expect(Object.values(seen).every((count) => count > 0)).toBe(true);
  });

  it('computes column-wise expectations equal to the element-wise definition', () => {
    for (const dtype of ALL_DTYPES) {
      for (const op of ALL_REDOPS) {
        const got = ref.expectedReduction(dtype, op, 5, 11, 128, 1234);
        for (let i = 0; i < 128; i++) {
          const values = [0, 1, 2, 3, 4].map((r) => ref.valueOf(dtype, op, r, 11 + i, 1234));
          const one = new ref.ARRAY[dtype](1);
          one[0] = ref.reduceValues(dtype, op, values);
          expect([dtype, op, i, got[i]]).toEqual([dtype, op, i, one[0]]);
        }
      }
    }
  });
});
