/**
 * `mics bench step`: optimizer steps of the training engine on a synthetic model of
 * N units of P parameters, for the strategies of the MiCS paper, with compute
 * emulated as a GPU does it: each unit's forward waits --compute-ms and its
 * backward twice that, on a timer, leaving the CPU to the communication (as a GPU
 * kernel leaves the host thread free). Time per step is the median over --iters
 * steps of the slowest rank; bytes and waits come from engine.statistics().
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { allocHost } from '../../comm/host-memory';
import type { Communicator } from '../../comm/communicator';
import { createGroups, destroyGroups, type MicsGroups } from '../../comm/mics-groups';
import { invalidArgument } from '../../core/errors';
import { elementBytes } from '../../core/dtypes';
import { createEngine, type Engine } from '../../engine/engine';
import type { FloatDType } from '../../engine/backend';
import type { StepStats } from '../../engine/stats';
import type { EngineTensor, Precision } from '../../engine/types';
import { hostKernels } from '../../kernels/host';
import { fusedAccumulate, inOrderParts, replayedStep, type InOrderParts } from './step-replay';

/** The strategies: DDP, ZeRO-3 (flat, S = W), MiCS with S spanning 2 nodes (hierarchical), MiCS with S = one node. */
export type StepStrategy = 'ddp' | 'zero3' | 'mics-span' | 'mics-node';
export const STEP_STRATEGIES: readonly StepStrategy[] = ['ddp', 'zero3', 'mics-span', 'mics-node'];

export interface StepBenchOptions {
  strategies: StepStrategy[];
  units: number;
  unitParams: number;
  accumulation: number;
  precision: Precision;
  reduceDtype: FloatDType;
  computeMs: number;
  iters: number;
  warmup: number;
  /** Also time every collective and kernel of a step alone, and compare their sum with the step. */
  overhead: boolean;
  json: boolean;
}

export interface StepBenchRow {
  strategy: StepStrategy;
  partitionSize: number;
  /** Padded elements of every unit, in forward order. */
  unitElements: number[];
  hierarchical: boolean;
  /** Median over iterations of the slowest rank's step time. */
  stepMs: number;
  stepsPerSecond: number;
  /** Rank 0's statistics of its median step. */
  stats: StepStats;
  /** With --overhead: the step's collectives and kernels, each timed alone, summed. */
  aloneMs?: number;
  aloneParts?: Record<string, number>;
  // With --overhead, three timings taken in turn in every iteration (so that the
  // host's load drifts over all three alike), each the median of the slowest rank's:
  /** With --overhead: the engine's step, timed between the other two. */
  interleavedStepMs?: number;
  /** With --overhead: the same collectives and kernels replayed in the engine's order without the engine (step-replay.ts). */
  replayMs?: number;
  /** With --overhead: the step's collectives and kernels one at a time in its order on its buffers, each timed alone, summed. */
  inOrderMs?: number;
  /** With --overhead: how many collectives and kernels that is. */
  inOrderOps?: number;
  /** With --overhead: the median over iterations of step / replay - 1 (a fraction). */
  overheadOverReplay?: number;
  /** With --overhead: the median over iterations of step / parts in order - 1 (a fraction): the engine overhead. */
  overheadOverInOrder?: number;
  /** With --overhead: the parts in order, each part's time on its slowest rank, summed. */
  inOrderSlowestMs?: number;
  /** With --overhead: the median over iterations of step / that sum - 1 (a fraction). */
  overheadOverInOrderSlowest?: number;
  /** With --overhead: the wall time of the parts in order, the barrier before each op included. */
  inOrderWallMs?: number;
  /** With --overhead: one world barrier alone (the mean over back-to-back barriers), in ms. */
  barrierMs?: number;
  /** With --overhead: the median over iterations of step / that wall time - 1 (a fraction). */
  overheadOverInOrderWall?: number;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** S for a strategy on this world; undefined when the layout has no such group. */
export function partitionSizeFor(strategy: StepStrategy, worldSize: number, ranksPerNode: number): { S: number; hierarchical: boolean } | undefined {
  switch (strategy) {
    case 'ddp':
      return { S: 1, hierarchical: false };
    case 'zero3':
      return { S: worldSize, hierarchical: false };
    case 'mics-span':
      return worldSize >= 2 * ranksPerNode && worldSize % (2 * ranksPerNode) === 0 ? { S: 2 * ranksPerNode, hierarchical: true } : undefined;
    case 'mics-node':
      return ranksPerNode < worldSize && worldSize % ranksPerNode === 0 ? { S: ranksPerNode, hierarchical: false } : undefined;
  }
}

async function microStep(engine: Engine<EngineTensor>, computeMs: number): Promise<void> {
  const units = engine.units;
  for (const u of units) {
    await engine.gather(u);
    if (computeMs > 0) await sleep(computeMs);
    engine.release(u);
  }
  for (let i = units.length - 1; i >= 0; i--) {
    await engine.gather(units[i]);
    if (computeMs > 0) await sleep(2 * computeMs);
    engine.gradientBuffer(units[i], { zero: false }); // the "gradient" the emulated backward wrote over every element
    void engine.reduceGradients(units[i]);
    engine.release(units[i]);
  }
}

/** The median over `iters` runs of `body` (after one to warm up) of the largest of the ranks' results. */
async function slowestResult(world: Communicator, iters: number, body: () => Promise<number>): Promise<number> {
  await body();
  const results = new Float64Array(iters);
  for (let i = 0; i < iters; i++) results[i] = await body();
  await world.allReduce(results, { op: 'max' });
  return median(Array.from(results));
}

/** The median over `iters` runs of `body` (after one to warm up) of the slowest rank's time, in ms. */
function timeAlone(world: Communicator, iters: number, body: () => Promise<void>): Promise<number> {
  return slowestResult(world, iters, async () => {
    await world.barrier();
    const start = performance.now();
    await body();
    return performance.now() - start;
  });
}

/** One optimizer step of the engine (o.accumulation micro-steps and step()); resolves to this rank's ms. */
async function engineStep(engine: Engine<EngineTensor>, o: StepBenchOptions): Promise<number> {
  const start = performance.now();
  for (let a = 0; a < o.accumulation; a++) {
    await microStep(engine, o.computeMs);
    await engine.step();
  }
  return performance.now() - start;
}

type InterleavedOverhead = Required<
  Pick<
    StepBenchRow,
    'interleavedStepMs' | 'replayMs' | 'inOrderMs' | 'inOrderOps' | 'overheadOverReplay' | 'overheadOverInOrder' | 'inOrderWallMs' | 'barrierMs' | 'overheadOverInOrderWall' | 'inOrderSlowestMs' | 'overheadOverInOrderSlowest'
  >
>;

/** The mean time of one world barrier over `count` back to back, the slowest rank's. */
async function barrierMs(world: Communicator, count: number): Promise<number> {
  for (let i = 0; i < 20; i++) await world.barrier();
  const start = performance.now();
  for (let i = 0; i < count; i++) await world.barrier();
  const mean = new Float64Array([(performance.now() - start) / count]);
  await world.allReduce(mean, { op: 'max' });
  return mean[0];
}

/**
 * The engine's step, its replay and its parts in order, timed in turn in each of
 * `iters` iterations, so that the host's load drifts over all three alike. Each is
 * timed right after an untimed run of its own (the cache as a run of that kind
 * leaves it, as in back-to-back steps), and each iteration starts with a different
 * one of the three. Each figure is the slowest rank's; the overheads are medians of
 * the iterations' own ratios.
 */
async function interleavedOverhead(world: Communicator, groups: MicsGroups, engine: Engine<EngineTensor>, o: StepBenchOptions): Promise<InterleavedOverhead> {
  const replay = replayedStep(world, groups, engine, o);
  const inOrder = inOrderParts(world, groups, engine, o);
  let parts: InOrderParts = { ops: 0, ms: 0, wallMs: 0, slowestMs: 0 };
  const timings: (() => Promise<number>)[] = [
    async () => {
      await world.barrier();
      return engineStep(engine, o);
    },
    async () => {
      await world.barrier();
      const start = performance.now();
      await replay();
      return performance.now() - start;
    },
    async () => {
      parts = await inOrder();
      return parts.ms;
    },
  ];
  // One row per iteration: step, replay, parts in order, their wall time, their slowest-rank sum.
  const samples: Float64Array[] = [];
  for (let i = 0; i < o.iters; i++) {
    const ms = new Float64Array(5);
    for (let k = 0; k < 3; k++) {
      const which = (i + k) % 3;
      await timings[which]();
      ms[which] = await timings[which]();
    }
    ms[3] = parts.wallMs;
    ms[4] = parts.slowestMs;
    await world.allReduce(ms, { op: 'max' });
    samples.push(ms);
  }
  const column = (k: number): number => median(samples.map((s) => s[k]));
  const overStep = (k: number): number => median(samples.map((s) => s[0] / s[k] - 1));
  return {
    interleavedStepMs: column(0),
    replayMs: column(1),
    inOrderMs: column(2),
    inOrderOps: parts.ops,
    overheadOverReplay: overStep(1),
    overheadOverInOrder: overStep(2),
    inOrderWallMs: column(3),
    overheadOverInOrderWall: overStep(3),
    inOrderSlowestMs: column(4),
    overheadOverInOrderSlowest: overStep(4),
    barrierMs: await barrierMs(world, 200),
  };
}

/** The step's collectives and kernels, each alone, with the engine's buffer kinds and sizes. */
async function aloneParts(world: Communicator, groups: MicsGroups, engine: Engine<EngineTensor>, o: StepBenchOptions): Promise<Record<string, number>> {
  const S = groups.partition.size;
  const R = groups.replication.size;
  const unit = engine.units[0];
  const gatherDtype = engine.gatherDtype;
  const shard = unit.shardNumel;
  const parts: Record<string, number> = {};
  const iters = Math.max(3, o.iters);
  // Per micro-step: 2 all-gathers per unit (forward, re-gathered in backward) and one reduce-scatter.
  if (S > 1) {
    const send = allocHost(gatherDtype, shard);
    const full = allocHost(gatherDtype, shard * S);
    const t = await timeAlone(world, iters, () => groups.partition.allGather({ data: send, dtype: gatherDtype }, { data: full, dtype: gatherDtype }));
    parts.allGather = t * 2 * o.units * o.accumulation;
    const grad = allocHost(o.reduceDtype, shard * S);
    const out = allocHost(o.reduceDtype, shard);
    const rs = await timeAlone(world, iters, () => groups.partition.reduceScatter({ data: grad, dtype: o.reduceDtype }, { data: out, dtype: o.reduceDtype }));
    // Later micro-steps add into the accumulator in the reduce-scatter's own pass when the engine fuses it.
    const later =
      fusedAccumulate(groups, o) && o.accumulation > 1
        ? await timeAlone(world, iters, () => groups.partition.reduceScatter({ data: grad, dtype: 'f32' }, { data: out, dtype: 'f32' }, { accumulate: true }))
        : rs;
    parts.reduceScatter = o.units * (rs + later * (o.accumulation - 1));
  }
  const total = engine.layout.shardNumel;
  if (R > 1) {
    const acc = allocHost('f32', total);
    parts.allReduce = await timeAlone(world, iters, () => groups.replication.allReduce(acc, { op: 'sum' }));
  }
  const p = allocHost('f32', total);
  const g = allocHost('f32', total);
  const m = allocHost('f32', total);
  const v = allocHost('f32', total);
  parts.kernels = await timeAlone(world, iters, async () => {
    await hostKernels.sumOfSquares(g);
    await hostKernels.adamw({ params: p, grads: g, expAvg: m, expAvgSq: v, step: 1, lr: 1e-3 });
  });
  if (o.accumulation > 1 && !fusedAccumulate(groups, o)) {
    const temp = allocHost('f32', total);
    parts.accumulate = (await timeAlone(world, iters, () => hostKernels.accumulate(g, temp))) * (o.accumulation - 1);
  }
  return parts;
}

/** Runs every strategy the world allows; rows on every rank (rank 0 prints). */
export async function runStepBench(world: Communicator, ranksPerNode: number, o: StepBenchOptions): Promise<StepBenchRow[]> {
  const rows: StepBenchRow[] = [];
  for (const strategy of o.strategies) {
    const plan = partitionSizeFor(strategy, world.size, ranksPerNode);
    if (!plan) continue;
    const groups = await createGroups(world, { partitionSize: plan.S, hierarchical: plan.hierarchical });
    let engine: Engine<EngineTensor> | undefined;
    try {
      engine = await createEngine<EngineTensor>(groups, {
        parameters: Array.from({ length: o.units }, (_, i) => ({ name: `unit${i}.weight`, shape: [o.unitParams], unit: `unit${i}`, init: 'zeros' as const })),
        optimizer: { type: 'adamw', lr: 1e-4 },
        accumulationSteps: o.accumulation,
        precision: o.precision,
        reduceDtype: o.reduceDtype,
        persistenceThreshold: 0,
        init: { seed: 0 },
      });
      const times: number[] = [];
      for (let it = 0; it < o.warmup + o.iters; it++) {
        await world.barrier();
        const elapsed = Float64Array.of(await engineStep(engine, o));
        await world.allReduce(elapsed, { op: 'max' });
        if (it >= o.warmup) times.push(elapsed[0]);
      }
      const stepMs = median(times);
      const history = engine.statistics().steps.slice(o.warmup);
      const stats = history[times.indexOf(stepMs)] ?? history[history.length - 1];
      const row: StepBenchRow = {
        strategy,
        partitionSize: plan.S,
        unitElements: engine.units.map((u) => u.paddedNumel),
        hierarchical: groups.layout.hierarchical,
        stepMs,
        stepsPerSecond: 1000 / stepMs,
        stats,
      };
      if (o.overhead) {
        row.aloneParts = await aloneParts(world, groups, engine, o);
        row.aloneMs = Object.values(row.aloneParts).reduce((a, b) => a + b, 0);
        Object.assign(row, await interleavedOverhead(world, groups, engine, o));
      }
      rows.push(row);
    } finally {
      engine?.destroy();
      destroyGroups(groups);
    }
  }
  return rows;
}

/** Raw commander values -> options. */
export function parseStepOptions(raw: Record<string, string | boolean | undefined>): StepBenchOptions {
  const int = (flag: string, value: unknown, min: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw invalidArgument(`${flag} ${String(value)} is not valid: use an integer >= ${min}`);
    return n;
  };
  const strategies = String(raw.strategy ?? 'all') === 'all' ? [...STEP_STRATEGIES] : String(raw.strategy).split(',').map((s) => s.trim() as StepStrategy);
  for (const s of strategies) {
    if (!STEP_STRATEGIES.includes(s)) throw invalidArgument(`--strategy ${s} is not valid: use all or a comma list of ${STEP_STRATEGIES.join(', ')}`);
  }
  const precision = String(raw.precision ?? 'bf16') as Precision;
  if (!['fp32', 'bf16', 'fp16'].includes(precision)) throw invalidArgument(`--precision ${precision} is not valid: use fp32, bf16 or fp16`);
  const reduceDtype = String(raw.reduceDtype ?? 'f32') as FloatDType;
  if (!['f32', 'bf16', 'f16'].includes(reduceDtype)) throw invalidArgument(`--reduce-dtype ${reduceDtype} is not valid: use f32, bf16 or f16`);
  const computeMs = Number(raw.computeMs ?? 0);
  if (!Number.isFinite(computeMs) || computeMs < 0) throw invalidArgument(`--compute-ms ${String(raw.computeMs)} is not valid: use a number >= 0`);
  return {
    strategies,
    units: int('--units', raw.units ?? 8, 1),
    unitParams: int('--unit-params', raw.unitParams ?? 2097152, 1),
    accumulation: int('-a', raw.accumulation ?? 4, 1),
    precision,
    reduceDtype,
    computeMs,
    iters: int('-n', raw.iters ?? 5, 1),
    warmup: int('-w', raw.warmup_iters ?? 1, 0),
    overhead: raw.overhead === true,
    json: raw.json === true,
  };
}

const MB = (bytes: number): string => (bytes / 1e6).toFixed(1);

/** The table rank 0 prints (nccl-tests-like: one row per strategy). */
export function formatStepTable(rows: StepBenchRow[], header: string, o: StepBenchOptions): string {
  const pad = (s: string | number, w: number): string => String(s).padStart(w);
  const elt = elementBytes(o.precision === 'fp32' ? 'f32' : 'bf16');
  const lines = [
    `# mics bench step: ${header}`,
    `# model: ${o.units} units x ${o.unitParams} params = ${((o.units * o.unitParams) / 1e6).toFixed(1)}M, ${o.precision} gathers (${elt} B), ${o.reduceDtype} reduce, ` +
      `accumulation ${o.accumulation}, compute ${o.computeMs} ms forward + ${2 * o.computeMs} ms backward per unit`,
    `# bytes are MB moved by rank 0 per optimizer step; waits are rank 0's ms per step`,
    `# ${pad('strategy', 9)} ${pad('S', 3)} ${pad('hier', 4)} ${pad('step(ms)', 9)} ${pad('steps/s', 8)} ${pad('part.AG', 8)} ${pad('part.RS', 8)} ${pad('inter.AG', 8)} ${pad('intra.AG', 8)} ${pad('repl.AR', 8)} ${pad('gather', 7)} ${pad('reduce', 7)} ${pad('allred', 7)} ${pad('kernel', 7)} ${pad('compute', 8)}`,
  ];
  for (const r of rows) {
    const b = r.stats.bytes;
    lines.push(
      `  ${pad(r.strategy, 9)} ${pad(r.partitionSize, 3)} ${pad(r.hierarchical ? 'yes' : 'no', 4)} ${pad(r.stepMs.toFixed(1), 9)} ${pad(r.stepsPerSecond.toFixed(3), 8)} ` +
        `${pad(MB(b.partition.allGather), 8)} ${pad(MB(b.partition.reduceScatter), 8)} ${pad(MB(b.interNode.allGather), 8)} ${pad(MB(b.intraNode.allGather), 8)} ${pad(MB(b.replication.allReduce), 8)} ` +
        `${pad(r.stats.gatherWaitMs.toFixed(0), 7)} ${pad(r.stats.reduceWaitMs.toFixed(0), 7)} ${pad(r.stats.allReduceMs.toFixed(0), 7)} ${pad(r.stats.kernelMs.toFixed(0), 7)} ${pad(r.stats.computeMs.toFixed(0), 8)}`,
    );
  }
  for (const r of rows) {
    if (r.aloneMs !== undefined) {
      const parts = Object.entries(r.aloneParts ?? {}).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
      const percent = (base: number): string => `${((r.stepMs / base - 1) * 100).toFixed(1)}%`;
      lines.push(`# ${r.strategy}: step ${r.stepMs.toFixed(1)} ms vs its collectives and kernels alone ${r.aloneMs.toFixed(1)} ms (${parts}): overhead ${percent(r.aloneMs)}`);
      if (r.interleavedStepMs !== undefined && r.replayMs !== undefined && r.inOrderMs !== undefined) {
        const ratio = (fraction: number | undefined): string => `${((fraction ?? NaN) * 100).toFixed(1)}%`;
        lines.push(`# ${r.strategy}, interleaved (each iteration times all three; medians over ${o.iters}): step ${r.interleavedStepMs.toFixed(1)} ms`);
        lines.push(`#   vs the same collectives and kernels replayed in its order without the engine ${r.replayMs.toFixed(1)} ms: overhead ${ratio(r.overheadOverReplay)}`);
        lines.push(`#   vs its collectives and kernels each timed alone in its order on its buffers ${r.inOrderMs.toFixed(1)} ms: overhead ${ratio(r.overheadOverInOrder)}`);
        if (r.inOrderSlowestMs !== undefined) {
          lines.push(`#   vs the same parts, each on its slowest rank, summed ${r.inOrderSlowestMs.toFixed(1)} ms: overhead ${ratio(r.overheadOverInOrderSlowest)}`);
        }
        if (r.inOrderWallMs !== undefined && r.barrierMs !== undefined && r.inOrderOps !== undefined) {
          const barriers = r.inOrderOps * r.barrierMs;
          lines.push(
            `#   vs those ${r.inOrderOps} parts in order with a barrier before each, wall time ${r.inOrderWallMs.toFixed(1)} ms: overhead ${ratio(r.overheadOverInOrderWall)}; ` +
              `that wall is the parts ${r.inOrderMs.toFixed(1)} + ${r.inOrderOps} barriers of ${(r.barrierMs * 1000).toFixed(0)} us alone ${barriers.toFixed(1)} ` +
              `+ the rest ${(r.inOrderWallMs - r.inOrderMs - barriers).toFixed(1)} ms (the ranks' skew that the barriers absorbed)`,
          );
        }
      }
    }
  }
  const zero3 = rows.find((r) => r.strategy === 'zero3');
  if (zero3) for (const r of rows) if (r !== zero3) lines.push(`# ${r.strategy} over zero3: ${(zero3.stepMs / r.stepMs).toFixed(2)}x steps/s`);
  return lines.join('\n');
}

/**
 * The rows in the form `mics simulate --calibrate --step-bench FILE` compares with its
 * predictions (lib/plan/calibrate.ts StepBenchResult).
 */
export function simulatorResults(rows: StepBenchRow[], worldSize: number, ranksPerNode: number, o: StepBenchOptions): object[] {
  return rows.map((r) => ({
    strategy: r.strategy === 'mics-span' || r.strategy === 'mics-node' ? 'mics' : r.strategy,
    worldSize,
    ranksPerNode,
    partitionSize: r.partitionSize,
    hierarchical: r.hierarchical,
    unitElements: r.unitElements,
    gatherBytes: elementBytes(o.precision === 'fp32' ? 'f32' : 'bf16'),
    reduceBytes: elementBytes(o.reduceDtype),
    accumulation: o.accumulation,
    prefetchDepth: 1,
    computeSeconds: (3 * o.computeMs * o.units) / 1000,
    forwardFraction: 1 / 3,
    stepSeconds: r.stepMs / 1000,
  }));
}
