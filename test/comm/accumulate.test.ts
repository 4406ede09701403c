/**
 * reduceScatter(input, output, {accumulate: true}) adds the result into output in
 * the reduce-scatter's own pass: on every CPU path (shared memory staged, direct,
 * small inline and on the progress thread; the TCP ring; one rank; hierarchical and
 * pipelined) it leaves the bits of a plain reduce-scatter into a temporary followed
 * by output + temporary, and misuse is refused with a named error.
 */
import * as path from 'node:path';
import { init, type Communicator } from '../../lib';
import { describeRanks, killAllRanks, repoRoot, runRanks, type RankResult } from '../helpers/ranks';
import { rejection } from '../helpers/errors';

const script = path.join(repoRoot, 'test', 'fixtures', 'comm', 'accumulate.js');
afterAll(killAllRanks);

interface Case {
  mode: string;
  dtype: string;
  kind: string;
  n: number;
  wrong: number;
}

/** Small counts take the inline small-op path; 3 x 8192 + 5 spans several reduction passes. */
const COUNTS = [1, 7, 300, 3 * 8192 + 5];
const DTYPES = ['f32', 'f64', 'bf16', 'i32'];

async function run(n: number, options: Record<string, unknown>, extra: { nodes?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RankResult[]> {
  const results = await runRanks({ n, script, args: [JSON.stringify({ counts: COUNTS, dtypes: DTYPES, modes: ['flat'], ...options })], timeoutMs: 90000, ...extra });
  expect([results.every((r) => r.code === 0 && r.json !== undefined), describeRanks(results)]).toEqual([true, expect.any(String)]);
  return results;
}

function expectExact(results: RankResult[], modes: string[]): void {
  for (const r of results) {
    const cases = r.json.cases as Case[];
    expect(new Set(cases.map((c) => c.mode))).toEqual(new Set(modes));
    // every dtype and count, plus fractions for f32 and f64
    expect(cases.length).toBe(modes.length * COUNTS.length * (DTYPES.length + 2));
    const wrong = cases.filter((c) => c.wrong > 0);
    expect(wrong).toEqual([]);
    expect(r.json.errors.inPlace).toMatchObject({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(/accumulate .*must not overlap the input/) });
    expect(r.json.errors.notBoolean).toMatchObject({ code: 'MICS_INVALID_ARGUMENT', message: expect.stringMatching(/accumulate "yes" is not valid: use true or false/) });
  }
}

describe('reduceScatter with accumulate: output += the reduction, with the bits of a reduce-scatter and an add', () => {
  it('over shared memory, 4 ranks: ordinary arrays (staged) and small ops', async () => {
    expectExact(await run(4, { S: 4, alloc: false }), ['flat']);
  }, 120000);

  it('over shared memory, 4 ranks: allocHost inputs read in place by the peers (direct)', async () => {
    expectExact(await run(4, { S: 4, alloc: true }), ['flat']);
  }, 120000);

  it('with every small op on the progress thread (MICS_SHM_INLINE_US=0), 3 ranks', async () => {
    expectExact(await run(3, { S: 3, alloc: false }, { env: { MICS_SHM_INLINE_US: '0' } }), ['flat']);
  }, 120000);

  it('on one rank (a copy becomes an add)', async () => {
    expectExact(await run(1, { S: 1, alloc: false }), ['flat']);
  }, 120000);

  it('across 2 emulated nodes x 2 ranks: the flat TCP ring, the hierarchical and the pipelined reduce-scatter', async () => {
    const results = await run(4, { S: 4, alloc: false, modes: ['flat', 'hierarchical', 'pipelined'] }, { nodes: 2 });
    expect(results.every((r) => r.json.hierarchical === true)).toBe(true);
    expectExact(results, ['flat', 'hierarchical', 'pipelined']);
  }, 120000);
});

describe('reduceScatter with accumulate refuses an output that overlaps any byte of the input', () => {
  let world: Communicator;
  beforeAll(async () => {
    world = await init({ backend: 'cpu', env: { RANK: '0', WORLD_SIZE: '1' } });
  });
  afterAll(() => world.destroy());

  // One rank: the input is count elements; views of one 16-element buffer.
  const memory = new Float32Array(16);
  const view = (start: number, count: number): Float32Array => memory.subarray(start, start + count);

  it.each([
    ['the output right after the input', 0, 4],
    ['the output right before the input', 4, 0],
  ])('%s: allowed', async (_name, inputStart, outputStart) => {
    memory.fill(1);
    await world.reduceScatter(view(inputStart, 4), view(outputStart, 4), { accumulate: true });
    expect(Array.from(view(outputStart, 4))).toEqual([2, 2, 2, 2]);
  });

  it.each([
    ['the same elements (in place)', 0, 0],
    ['the output on the input\'s last element', 0, 3],
    ['the input on the output\'s last element', 3, 0],
  ])('%s: MICS_INVALID_ARGUMENT, output unchanged', async (_name, inputStart, outputStart) => {
    memory.fill(1);
    const err = await rejection(world.reduceScatter(view(inputStart, 4), view(outputStart, 4), { accumulate: true }));
    // A partial overlap is refused for every reduce-scatter; in place only with accumulate.
    expect([err.code, err.message]).toEqual(['MICS_INVALID_ARGUMENT', expect.stringMatching(/^reduceScatter: .*overlap/)]);
    expect(Array.from(memory)).toEqual(new Array(16).fill(1));
  });
});
