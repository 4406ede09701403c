/**
 * `mics bench step --overhead`, the replay: one optimizer step's collectives and
 * kernels issued straight on the communicators and the CPU kernels, in the engine's
 * order and with its overlap (the next unit's all-gather issued before the current
 * one is awaited; reduce-scatters and their accumulation running while backward goes
 * on), on the engine's own buffers: the step a hand-written program would run
 * without the engine's bookkeeping. Its time against the engine's step is
 * what the engine itself adds; the parts timed alone (step.ts) are what each op
 * costs back to back on buffers that stay in cache.
 *
 * `inOrderParts` runs the same step one op at a time instead: each collective and
 * kernel starts after a barrier with nothing else in flight and is timed alone, on
 * the step's own buffers in the step's order (so with the cache state the step
 * leaves it), and their times are summed.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { allGather, reduceScatter } from '../../comm/collectives';
import type { Communicator } from '../../comm/communicator';
import type { MicsGroups } from '../../comm/mics-groups';
import type { DType, HostArrayOf } from '../../core/dtypes';
import { accumulatesInReduceScatter, HostBackend, type FloatDType, type HalfDType } from '../../engine/backend';
import { ownBuffers, type Engine, type EngineOwnBuffers } from '../../engine/engine';
import type { UnitLayout } from '../../engine/layout';
import type { EngineTensor } from '../../engine/types';

type Host = HostArrayOf<DType>;

export interface ReplayOptions {
  accumulation: number;
  reduceDtype: FloatDType;
  computeMs: number;
}

/** Whether the engine adds later micro-steps' gradients in the reduce-scatter itself, as the replay then does. */
export function fusedAccumulate(groups: MicsGroups, o: { reduceDtype: FloatDType }): boolean {
  return accumulatesInReduceScatter(groups.partition, o.reduceDtype);
}

/** One replayed optimizer step, to time, on the engine's buffers (between its steps). Host buffers (cpu backend) only. */
export function replayedStep(world: Communicator, groups: MicsGroups, engine: Engine<EngineTensor>, o: ReplayOptions): () => Promise<void> {
  return buildStep(world, groups, engine, o, (op) => op(), true);
}

/** One step's collectives and kernels timed one at a time: their number and this rank's summed time. */
export interface InOrderParts {
  ops: number;
  ms: number;
  /** This rank's wall time of the whole step, the barriers before its ops included. */
  wallMs: number;
  /**
   * Each part's time on its slowest rank, summed: a collective lasts until its last rank
   * is done (the statistic `mics bench collectives` reports). Taken after the step.
   */
  slowestMs: number;
}

/**
 * One step with its ops one at a time, each after a barrier: resolves to the sum of
 * this rank's times of its collectives and kernels, in ms (compute is not counted).
 */
export function inOrderParts(world: Communicator, groups: MicsGroups, engine: Engine<EngineTensor>, o: ReplayOptions): () => Promise<InOrderParts> {
  let parts: InOrderParts = { ops: 0, ms: 0, wallMs: 0, slowestMs: 0 };
  let times: number[] = [];
  const alone = async <T>(op: () => Promise<T> | T): Promise<T> => {
    await world.barrier();
    const start = performance.now();
    const result = await op();
    const ms = performance.now() - start;
    parts.ms += ms;
    times.push(ms);
    parts.ops++;
    return result;
  };
  const step = buildStep(world, groups, engine, o, alone, false);
  return async () => {
    parts = { ops: 0, ms: 0, wallMs: 0, slowestMs: 0 };
    times = [];
    const start = performance.now();
    await step();
    parts.wallMs = performance.now() - start;
    // Every rank ran the same parts in the same order.
    const slowest = Float64Array.from(times);
    await world.allReduce(slowest, { op: 'max' });
    parts.slowestMs = slowest.reduce((sum, ms) => sum + ms, 0);
    return parts;
  };
}

/** Runs one op of the step (as is, or timed alone). */
type PartRunner = <T>(op: () => Promise<T> | T) => Promise<T> | T;

function buildStep(
  world: Communicator,
  groups: MicsGroups,
  engine: Engine<EngineTensor>,
  o: ReplayOptions,
  part: PartRunner,
  overlap: boolean,
): () => Promise<void> {
  const backend = new HostBackend();
  const S = groups.partition.size;
  const R = groups.replication.size;
  const units = engine.units;
  const gatherDtype = engine.gatherDtype;
  const rd = o.reduceDtype;
  const largest = Math.max(...units.map((u) => u.paddedNumel));
  // The engine's own memory: the same pages as its step (another allocation of the
  // same sizes runs a few percent faster or slower by where its pages lie).
  const own = engine[ownBuffers]() as EngineOwnBuffers<Host>;
  const { params, master, accumulator: acc, normScratch: norm } = own;
  if (own.expAvg === undefined || own.expAvgSq === undefined) throw new Error('bench step: the engine was made without AdamW');
  const { expAvg, expAvgSq } = own;
  // Its pools keep two full buffers of each kind in use at a time (the unit and the one prefetched).
  const gathered = own.pooled(gatherDtype, largest, 2);
  const grads = own.pooled(rd, largest, 2);
  const temps = units.map((u) => own.pooled(rd, u.shardNumel, 2)[u.index % 2]);
  const shard = (buffer: Host, u: UnitLayout): Host => backend.view(buffer, u.shardOffset, u.shardNumel);
  const full = (buffers: Host[], u: UnitLayout): Host => backend.view(buffers[u.index % 2], 0, u.paddedNumel);

  const gather = async (u: UnitLayout): Promise<void> => {
    if (S > 1) await part(() => allGather(groups, backend.tensor(shard(params, u), gatherDtype), backend.tensor(full(gathered, u), gatherDtype)));
  };
  const reduce = async (u: UnitLayout, first: boolean): Promise<void> => {
    const into = shard(acc, u);
    const gradient = full(grads, u);
    if (S === 1) {
      if (first && rd === 'f32') await part(() => backend.copy(into, gradient));
      else if (first) await part(() => backend.cast(into, 'f32', gradient, rd));
      else await part(() => backend.accumulate(into, gradient, rd));
      return;
    }
    const accumulate = !first && fusedAccumulate(groups, o);
    const direct = (first && rd === 'f32') || accumulate;
    const out = direct ? into : temps[u.index];
    await part(() => reduceScatter(groups, backend.tensor(gradient, rd), backend.tensor(out, rd), { op: 'sum', accumulate }));
    if (direct) return;
    if (first) await part(() => backend.cast(into, 'f32', out, rd));
    else await part(() => backend.accumulate(into, out, rd));
  };

  // With overlap, as the engine runs: the next unit's gather is issued before the
  // current one is awaited, and reduce-scatters run on while backward goes on.
  // Without, each op is awaited before the next starts.
  return async (): Promise<void> => {
    for (let a = 0; a < o.accumulation; a++) {
      let next: Promise<void> | undefined = overlap ? gather(units[0]) : undefined;
      for (let i = 0; i < units.length; i++) {
        const current = overlap ? next : gather(units[i]);
        next = overlap && i + 1 < units.length ? gather(units[i + 1]) : undefined;
        await current;
        if (o.computeMs > 0) await sleep(o.computeMs);
      }
      const reductions: Promise<void>[] = [];
      next = overlap ? gather(units[units.length - 1]) : undefined;
      for (let i = units.length - 1; i >= 0; i--) {
        const current = overlap ? next : gather(units[i]);
        next = overlap && i > 0 ? gather(units[i - 1]) : undefined;
        await current;
        if (o.computeMs > 0) await sleep(2 * o.computeMs);
        const reduction = reduce(units[i], a === 0);
        if (overlap) reductions.push(reduction);
        else await reduction;
      }
      await Promise.all(reductions);
    }
    if (R > 1) await part(() => groups.replication.allReduce(backend.tensor(acc, 'f32'), { op: 'sum' }));
    let sumOfSquares = await part(() => backend.sumOfSquares(acc));
    if (S > 1) {
      backend.write(norm, [sumOfSquares]);
      await part(() => groups.partition.allReduce(backend.tensor(norm, 'f64'), { op: 'sum' }));
      sumOfSquares = backend.read64(norm)[0];
    }
    const half = gatherDtype === 'f32' ? undefined : { buffer: params, dtype: gatherDtype as HalfDType };
    const gradScale = 1 / (world.size * o.accumulation * Math.max(1, Math.sqrt(sumOfSquares)));
    await part(() =>
      backend.adamw(master, acc, expAvg, expAvgSq, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1, gradScale }, half),
    );
  };
}
