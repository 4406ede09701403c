/** `mics bench`: option parsing, and real runs whose seeded results check out. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { warmupNote } from '../../lib/cli/bench/collectives';
import { rankNodeFlags } from '../../lib/cli/bench/local-ranks';
import { parseBenchOptions, parseSize } from '../../lib/cli/bench/options';
import { runNode } from '../helpers/run-node';

describe('mics bench options (nccl-tests flags)', () => {
  it('reads sizes with K/M/G suffixes as powers of 1024', () => {
    expect(parseSize('8', '-b')).toBe(8);
    expect(parseSize('1K', '-b')).toBe(1024);
    expect(parseSize('64M', '-e')).toBe(64 * 1024 * 1024);
    expect(() => parseSize('lots', '-e')).toThrow(/-e lots is not a size/);
  });

  it('maps nccl-tests type names and rejects unknown ops, types and reductions by name', () => {
    expect(parseBenchOptions({ datatype: 'half' }).dtype).toBe('f16');
    expect(parseBenchOptions({ datatype: 'bfloat16', op: 'all_gather,all_reduce' }).ops).toEqual(['all_gather', 'all_reduce']);
    expect(() => parseBenchOptions({ op: 'alltoall' })).toThrow(/-o alltoall is not valid/);
    expect(() => parseBenchOptions({ datatype: 'float8' })).toThrow(/-d float8 is not valid/);
    expect(() => parseBenchOptions({ redop: 'xor' })).toThrow(/-r xor is not valid/);
    expect(() => parseBenchOptions({ minbytes: '1M', maxbytes: '1K' })).toThrow(/below/);
  });

  it('-R 1 asks for allocHost buffers (nccl-tests buffer registration); other values are rejected', () => {
    expect(parseBenchOptions({}).register).toBe(false);
    expect(parseBenchOptions({ local_register: '1' }).register).toBe(true);
    expect(() => parseBenchOptions({ local_register: '2' })).toThrow(/-R 2 is not valid: use 0 .* or 1/);
  });

  it('-T picks the statistic: the median per iteration of the slowest rank (default) or the mean per call over back-to-back calls', () => {
    expect(parseBenchOptions({}).timing).toBe('median');
    expect(parseBenchOptions({ timing: 'mean' }).timing).toBe('mean');
    expect(() => parseBenchOptions({ timing: 'max' })).toThrow(/-T max is not valid: use median .* or mean/);
  });

  it('says when the first small rows will time V8 compiling the call path, and how to warm past it', () => {
    expect(warmupNote(parseBenchOptions({}))).toMatch(/first small rows here time that start-up; -w 20000 measures the per-call cost of a running job$/);
    expect(warmupNote(parseBenchOptions({ warmupIters: '20000' }))).toBeUndefined();
    // Large messages only: per-call JavaScript is not what they measure.
    expect(warmupNote(parseBenchOptions({ minbytes: '1M' }))).toBeUndefined();
  });
});

describe('mics bench runs', () => {
  it('collectives: every op on 3 local ranks, out of place and in place, with no wrong element', () => {
    const result = runNode(['dist/cli/mics.js', 'bench', 'collectives', '-b', '8', '-e', '100K', '-f', '7', '-n', '1', '-w', '0', '--nproc', '3', '--json'], {}, 120000);
    expect([result.status, result.stderr]).toEqual([0, '']);
    const { header, rows } = JSON.parse(result.stdout) as { header: string; rows: { op: string; size: number; outOfPlace: { wrong: number; busbw: number }; inPlace: { wrong: number } }[] };
    expect(header).toMatch(/register 0 timing median directOps 0$/);
    expect(new Set(rows.map((r) => r.op))).toEqual(new Set(['all_gather', 'reduce_scatter', 'all_reduce', 'broadcast']));
    for (const r of rows) {
      expect([r.op, r.size, r.outOfPlace.wrong, r.inPlace.wrong]).toEqual([r.op, r.size, 0, 0]);
      expect(r.outOfPlace.busbw).toBeGreaterThan(0);
    }
  }, 150000);

  it('collectives -R 1: inputs from allocHost, no wrong element, and the header counts the direct ops', () => {
    const result = runNode(['dist/cli/mics.js', 'bench', 'collectives', '-b', '1K', '-e', '1M', '-f', '32', '-n', '1', '-w', '0', '--nproc', '4', '-R', '1', '--json'], {}, 120000);
    expect([result.status, result.stderr]).toEqual([0, '']);
    const { header, rows } = JSON.parse(result.stdout) as { header: string; rows: { op: string; outOfPlace: { wrong: number }; inPlace: { wrong: number } }[] };
    // Every all_gather, reduce_scatter and all_reduce call read the peers' inputs in place.
    expect(header).toMatch(/register 1 timing median directOps [1-9]\d*$/);
    expect(rows.length).toBe(4 * 3);
    for (const r of rows) expect([r.op, r.outOfPlace.wrong, r.inPlace.wrong]).toEqual([r.op, 0, 0]);
  }, 150000);

  it('collectives -T mean: small all_reduces timed back to back, no wrong element', () => {
    const result = runNode(['dist/cli/mics.js', 'bench', 'collectives', '-b', '8', '-e', '64K', '-f', '64', '-n', '50', '-w', '5', '-o', 'all_reduce', '--nproc', '3', '-T', 'mean', '--json'], {}, 120000);
    expect([result.status, result.stderr]).toEqual([0, '']);
    const { header, rows } = JSON.parse(result.stdout) as { header: string; rows: { size: number; outOfPlace: { wrong: number; timeUs: number }; inPlace: { wrong: number } }[] };
    expect(header).toMatch(/timing mean/);
    expect(rows.map((r) => r.size)).toEqual([8, 512, 32768]);
    for (const r of rows) expect([r.size, r.outOfPlace.wrong, r.inPlace.wrong, r.outOfPlace.timeUs > 0]).toEqual([r.size, 0, 0, true]);
  }, 150000);

  it('partition -o reduce_scatter: hierarchical and flat gradient reduce-scatters on 2 emulated nodes, both correct', () => {
    const result = runNode(['dist/cli/mics.js', 'bench', 'partition', '-S', '4', '-o', 'reduce_scatter', '-b', '64K', '-e', '4M', '-f', '64', '-n', '1', '-w', '0', '--json'], {}, 120000);
    expect([result.status, result.stderr]).toEqual([0, '']);
    const { rows } = JSON.parse(result.stdout) as { rows: { mode: string; cell: { wrong: number } }[] };
    expect(rows.map((r) => r.mode)).toEqual(['hierarchical', 'flat', 'hierarchical', 'flat']);
    for (const r of rows) expect(r.cell.wrong).toBe(0);
  }, 150000);

  it('partition: hierarchical and flat rows on 2 emulated nodes, both correct', () => {
    const result = runNode(['dist/cli/mics.js', 'bench', 'partition', '-S', '4', '-b', '64K', '-e', '256K', '-n', '1', '-w', '0', '--json'], {}, 120000);
    expect([result.status, result.stderr]).toEqual([0, '']);
    const { rows } = JSON.parse(result.stdout) as { rows: { mode: string; cell: { wrong: number } }[] };
    expect(rows.map((r) => r.mode)).toEqual(['hierarchical', 'flat', 'hierarchical', 'flat']);
    for (const r of rows) expect(r.cell.wrong).toBe(0);
  }, 150000);

  it('step: every strategy on 2 emulated nodes x 2 ranks, with the bytes each moved and the engine overhead', () => {
    const result = runNode(
      ['dist/cli/mics.js', 'bench', 'step', '--units', '3', '--unit-params', '4096', '-a', '2', '-n', '1', '-w', '0', '--nproc', '4', '--emulate-nodes', '2', '--overhead', '--json'],
      {},
      120000,
    );
    expect([result.status, result.stderr]).toEqual([0, '']);
    const { rows } = JSON.parse(result.stdout) as {
      rows: { strategy: string; partitionSize: number; hierarchical: boolean; stepMs: number; aloneMs: number; interleavedStepMs: number; replayMs: number; inOrderMs: number; inOrderOps: number; overheadOverReplay: number; overheadOverInOrder: number; inOrderSlowestMs: number; overheadOverInOrderSlowest: number; inOrderWallMs: number; barrierMs: number; overheadOverInOrderWall: number; stats: { microSteps: number; bytes: Record<string, Record<string, number>> } }[];
    };
    expect(rows.map((r) => [r.strategy, r.partitionSize, r.hierarchical])).toEqual([
      ['ddp', 1, false],
      ['zero3', 4, false],
      ['mics-span', 4, true],
      ['mics-node', 2, false],
    ]);
    for (const r of rows) {
      expect(r.stepMs).toBeGreaterThan(0);
      expect(r.aloneMs).toBeGreaterThan(0);
      expect(r.replayMs).toBeGreaterThan(0);
      expect(r.inOrderMs).toBeGreaterThan(0);
      expect(r.interleavedStepMs).toBeGreaterThan(0);
      // Each overhead is a ratio of two timings of one iteration, minus one (n = 1 here: exactly).
      expect(r.overheadOverReplay).toBeCloseTo(r.interleavedStepMs / r.replayMs - 1, 10);
      expect(r.overheadOverInOrder).toBeCloseTo(r.interleavedStepMs / r.inOrderMs - 1, 10);
      // The parts on their slowest ranks take at least what they take on the slowest rank
      // overall; with the barriers between them, longer still.
      expect(r.inOrderSlowestMs).toBeGreaterThanOrEqual(r.inOrderMs - 1e-9);
      expect(r.inOrderWallMs).toBeGreaterThan(r.inOrderMs);
      expect(r.barrierMs).toBeGreaterThan(0);
      expect(r.overheadOverInOrderSlowest).toBeCloseTo(r.interleavedStepMs / r.inOrderSlowestMs - 1, 10);
      expect(r.overheadOverInOrderWall).toBeCloseTo(r.interleavedStepMs / r.inOrderWallMs - 1, 10);
      expect(r.stats.microSteps).toBe(2);
    }
    // Timed one at a time: every op the layout implies, once. ddp (S = 1): per unit a copy
    // then an accumulation, the replicas' all-reduce, the norm and AdamW; the sharded
    // ones: 2 all-gathers and a reduce-scatter per unit and micro-step (later ones add
    // in the reduce-scatter), the replicas' all-reduce where R > 1, the norm's
    // all-reduce, the norm and AdamW.
    expect(rows.map((r) => r.inOrderOps)).toEqual([3 * 2 + 3, 3 * 3 * 2 + 3, 3 * 3 * 2 + 3, 3 * 3 * 2 + 4]);
    // bf16 gathers: 3 units x 4096 params, re-gathered in backward: 2 all-gathers per unit per micro-step
    const zero3 = rows[1].stats.bytes;
    expect(zero3.partition.allGather).toBe(2 * 2 * 3 * 3 * 1024 * 2);
    expect(rows[2].stats.bytes.interNode.allGather).toBe(2 * 2 * 3 * 1 * 1024 * 2);
  }, 150000);

  it('step: bad options are named', () => {
    const result = runNode(['dist/cli/mics.js', 'bench', 'step', '--strategy', 'zero2', '--nproc', '1'], {}, 60000);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/--strategy zero2 is not valid: use all or a comma list of ddp, zero3, mics-span, mics-node/);
  });

  it("--nproc ranks inherit the node flags (node --cpu-prof profiles every rank), except the inspector's", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mics-prof-'));
    const result = runNode(['--cpu-prof', `--cpu-prof-dir=${dir}`, 'dist/cli/mics.js', 'bench', 'collectives', '-b', '8', '-e', '8', '-n', '1', '-w', '0', '-c', '0', '-o', 'all_reduce', '--nproc', '2'], {}, 60000);
    expect([result.status, result.stderr]).toEqual([0, '']);
    // The parent's profile and one per rank.
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))).toHaveLength(3);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(rankNodeFlags(['--cpu-prof', '--inspect', '--inspect-brk=9229', '--inspect-port', '9230', '-r', 'hook', '--debug-port=1'])).toEqual(['--cpu-prof', '-r', 'hook']);
  });

  it.each([['collectives'], ['step']])('%s: --nproc beyond what one machine starts is named, and nothing is started', (command) => {
    const result = runNode(['dist/cli/mics.js', 'bench', command, '--nproc', '1000000'], {}, 60000);
    expect([result.status, result.stderr.trim()]).toEqual([1, 'mics: --nproc 1000000 is not valid: use an integer from 1 to 65536']);
  });
});
