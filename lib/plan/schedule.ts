/**
 * The time model: one training step of a strategy, simulated unit by unit on two
 * streams per GPU (compute, and communication in issue order), the way the
 * engine runs it:
 *
 * - forward: gather unit k+1..k+d (prefetch depth d) while unit k computes;
 *   release each unit after use;
 * - backward (ZeRO-3 style): re-gather each unit in reverse order, prefetching the
 *   next; when a unit's backward is done, reduce-scatter its gradient in the
 *   partition group (HSDP without deferral also all-reduces the shard across the
 *   replicas right after);
 * - at the accumulation boundary: all-reduce the gradient shard across the
 *   replication group (MiCS' second hop), then the optimizer on the shard.
 *
 * Strategies are the same schedule with other groups: ZeRO-3 is S = W (flat ring,
 * as DeepSpeed and FSDP run it), DDP is S = 1 (our engine: one all-reduce of the
 * whole gradient at the boundary), HSDP is S = one node with the all-reduce on
 * every micro-step unless deferred, ZeRO-2 keeps parameters replicated,
 * reduce-scatters gradients and all-gathers updated parameters after the step.
 *
 * @packageDocumentation
 */
import { invalidArgument, valueText } from '../core/errors';
import { addCosts, hierarchicalAllGather, hierarchicalReduceScatter, NO_COST, ringCollective, type CollectiveCost, type GroupLayout } from './collectives';
import { memoryPerGpu, precisionOf, totalsOfKinds, unitKinds, type MemoryBreakdown, type StateAccounting, type UnitGranularity } from './memory';
import { ATTENTION_KERNELS, trainingFlops, type AttentionKernel, type ModelSpec } from './models';
import type { ClusterPreset } from './presets';

/** The strategies the simulator knows. */
export type Strategy = 'mics' | 'zero3' | 'zero2' | 'hsdp' | 'ddp';
export const STRATEGIES: readonly Strategy[] = ['mics', 'zero3', 'zero2', 'hsdp', 'ddp'];

/** Everything a step prediction depends on. */
export interface StepSetup {
  readonly cluster: ClusterPreset;
  readonly model: ModelSpec;
  /** W: ranks in the job. */
  readonly worldSize: number;
  readonly strategy: Strategy;
  /** S for `mics` (other strategies fix it: ZeRO-3/ZeRO-2 W, HSDP one node, DDP 1). */
  readonly partitionSize?: number;
  /** Two-stage all-gather and reduce-scatter when the partition group spans whole nodes (default: true for mics, false otherwise). */
  readonly hierarchical?: boolean;
  readonly microBatch: number;
  readonly sequence: number;
  /** Micro-steps per optimizer step (gradient accumulation), >= 1. */
  readonly accumulation: number;
  /** Activation recomputation (checkpointing every layer). Default true. */
  readonly recompute?: boolean;
  /** How attention keeps its activations (default `unfused`; `flash`: FlashAttention or fused SDPA). */
  readonly attention?: AttentionKernel;
  /** State accounting and dtypes (default `engine`). */
  readonly accounting?: StateAccounting;
  /** The engine's reduce dtype (default fp32; bf16 halves reduce-scatter bytes). */
  readonly reduceDtype?: 'fp32' | 'bf16';
  /** Units prefetched ahead of the one computing (default 1). */
  readonly prefetchDepth?: number;
  /** Units per layer (default `layer`). */
  readonly granularity?: UnitGranularity;
  /** HSDP: all-reduce only at the accumulation boundary (FSDP2 set_requires_all_reduce(False)). */
  readonly deferAllReduce?: boolean;
  /** Fraction of device memory kept free (default 0.1). */
  readonly fragmentation?: number;
  /** Measured compute seconds per micro-step, replacing the FLOP-based estimate (calibration). */
  readonly computeSecondsPerMicroStep?: number;
}

/** Time of each kind of communication per step, summed over calls (not all of it is exposed). */
export interface CommBreakdown {
  readonly allGather: number;
  readonly reduceScatter: number;
  readonly allReduce: number;
  /** Of the above, the latency terms (hops and start-up). */
  readonly latency: number;
}

/** The prediction for one step. */
export interface StepPrediction {
  readonly strategy: Strategy;
  readonly worldSize: number;
  readonly partitionSize: number;
  readonly replicationSize: number;
  readonly hierarchical: boolean;
  readonly microBatch: number;
  readonly accumulation: number;
  /** Seconds per optimizer step. */
  readonly stepTime: number;
  /** Seconds of compute per step (all micro-steps). */
  readonly computeTime: number;
  /** Seconds of communication the compute did not hide, per step. */
  readonly exposedCommTime: number;
  /** Boundary work per step: the replication all-reduce (or ZeRO-2's parameter all-gather) and the optimizer. */
  readonly boundaryTime: number;
  readonly comm: CommBreakdown;
  /** FLOPs executed per GPU per second (recomputation included), in TFLOPS. */
  readonly tflopsPerGpu: number;
  /** Model FLOPs (no recomputation) per GPU per second, in TFLOPS. */
  readonly modelTflopsPerGpu: number;
  readonly samplesPerSecond: number;
  readonly tokensPerSecond: number;
  /** Bytes per step: per GPU over intra-node links, per node over the NICs. */
  readonly intraBytesPerGpu: number;
  readonly interBytesPerNode: number;
  readonly memory: MemoryBreakdown;
}

interface CommOp {
  readonly issue: number;
  readonly seq: number;
  readonly cost: CollectiveCost;
  done?: number;
}

const runsBefore = (a: CommOp, b: CommOp): boolean => a.issue < b.issue || (a.issue === b.issue && a.seq < b.seq);

/**
 * The communication stream: ops run one at a time in issue order (time issued, then
 * the order of the calls). The queue is a binary heap, so a deep prefetch (every unit
 * issued at once) costs log(units) per op, not a scan of the queue.
 */
class CommStream {
  private free = 0;
  private seq = 0;
  private readonly pending: CommOp[] = [];
  intraBytes = 0;
  interBytes = 0;

  issue(at: number, cost: CollectiveCost): CommOp {
    const op: CommOp = { issue: at, seq: this.seq++, cost };
    const heap = this.pending;
    let i = heap.push(op) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!runsBefore(op, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = op;
    return op;
  }

  /** The op that runs next, removed from the queue. */
  private next(): CommOp {
    const heap = this.pending;
    const top = heap[0];
    const last = heap.pop() as CommOp;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const child = left + 1 < heap.length && runsBefore(heap[left + 1], heap[left]) ? left + 1 : left;
        if (!runsBefore(heap[child], last)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }

  /** Runs queued ops in issue order until `op` has run; returns when it completes. */
  complete(op: CommOp): number {
    while (op.done === undefined) {
      const run = this.next();
      const start = Math.max(this.free, run.issue);
      this.free = start + run.cost.time;
      run.done = this.free;
      this.intraBytes += run.cost.intraBytesPerGpu;
      this.interBytes += run.cost.interBytesPerNode;
    }
    return op.done;
  }

  /** Runs everything queued; returns when the stream is idle. */
  drain(): number {
    while (this.pending.length > 0) this.complete(this.pending[0]);
    return this.free;
  }
}

/** The groups a strategy uses: partition size, layout of its groups, hierarchy. */
export interface StrategyGroups {
  readonly partitionSize: number;
  readonly replicationSize: number;
  readonly hierarchical: boolean;
  /** Nodes one partition group spans (1 inside a node). */
  readonly nodesPerPartition: number;
  readonly partition: GroupLayout;
  readonly replication: GroupLayout;
}

/** Resolves the groups of a strategy; a MicsError for a partition size the world cannot use. */
export function strategyGroups(setup: Pick<StepSetup, 'cluster' | 'worldSize' | 'strategy' | 'partitionSize' | 'hierarchical'>): StrategyGroups {
  const W = setup.worldSize;
  const G = Math.min(setup.cluster.gpusPerNode, W);
  if (!Number.isInteger(W) || W < 1) throw invalidArgument(`world size ${W} is not valid: use a positive integer`);
  if (W > setup.cluster.gpusPerNode && W % setup.cluster.gpusPerNode !== 0) {
    throw invalidArgument(
      `world size ${W} is not a whole number of ${setup.cluster.name} nodes (${setup.cluster.gpusPerNode} GPUs each): use a multiple of ${setup.cluster.gpusPerNode}`,
    );
  }
  let S: number;
  switch (setup.strategy) {
    case 'zero3':
    case 'zero2':
      S = W;
      break;
    case 'ddp':
      S = 1;
      break;
    case 'hsdp':
      S = setup.partitionSize ?? G;
      break;
    case 'mics':
      if (setup.partitionSize === undefined) throw invalidArgument('mics needs a partition size (or let the planner choose it)');
      S = setup.partitionSize;
      break;
    default:
      throw invalidArgument(`unknown strategy '${valueText(setup.strategy)}': use ${STRATEGIES.join(', ')}`);
  }
  if (!Number.isInteger(S) || S < 1 || W % S !== 0) {
    throw invalidArgument(`partition size ${S} does not divide world size ${W}: use a divisor of ${W}`);
  }
  const spans = S > G;
  const whole = S % G === 0;
  const hierarchical = (setup.hierarchical ?? setup.strategy === 'mics') && spans && whole;
  const R = W / S;
  const partitionPerNode = spans ? G : S;
  // Replication group {i, i+S, ...}: one rank per node when S >= G, else G/S ranks per node.
  const replicationPerNode = S >= G ? 1 : Math.min(G / S, R);
  return {
    partitionSize: S,
    replicationSize: R,
    hierarchical,
    nodesPerPartition: spans ? Math.ceil(S / G) : 1,
    partition: { ranks: S, perNode: partitionPerNode },
    replication: { ranks: R, perNode: replicationPerNode },
  };
}

/** A unit as the time model sees it: its size and the compute that uses it. */
export interface TimedUnit {
  readonly elements: number;
  /** Seconds of forward compute per micro-step. */
  readonly forwardSeconds: number;
  /** Seconds of backward compute per micro-step (recomputation included). */
  readonly backwardSeconds: number;
}

/** Input of {@link simulateUnits}: groups and units, no model shape. */
export interface UnitScheduleInput {
  readonly cluster: ClusterPreset;
  readonly worldSize: number;
  readonly strategy: Strategy;
  readonly partitionSize?: number;
  readonly hierarchical?: boolean;
  /** Units in forward order, padded. */
  readonly units: readonly TimedUnit[];
  readonly accumulation: number;
  readonly gatherBytes: number;
  readonly reduceBytes: number;
  /** Optimizer bytes per parameter of the shard (read + written). */
  readonly optimizerBytesPerParameter: number;
  readonly prefetchDepth: number;
  readonly deferAllReduce?: boolean;
}

/** What {@link simulateUnits} returns: times and bytes of one optimizer step. */
export interface UnitSchedule {
  readonly groups: StrategyGroups;
  readonly stepTime: number;
  readonly computeTime: number;
  readonly exposedCommTime: number;
  readonly boundaryTime: number;
  readonly comm: CommBreakdown;
  readonly intraBytesPerGpu: number;
  readonly interBytesPerNode: number;
}

/**
 * The engine's schedule over explicit units (the core of {@link predictStep};
 * also what a measured step is compared against, see `compareStepBench`).
 */
export function simulateUnits(x: UnitScheduleInput): UnitSchedule {
  const { cluster, units } = x;
  const groups = strategyGroups(x);
  const S = groups.partitionSize;
  if (!Number.isSafeInteger(x.accumulation) || x.accumulation < 1) {
    throw invalidArgument(`accumulation steps ${valueText(x.accumulation)} is not valid: use a positive integer`);
  }
  if (!Number.isSafeInteger(x.prefetchDepth) || x.prefetchDepth < 0) {
    throw invalidArgument(`prefetch depth ${valueText(x.prefetchDepth)} is not valid: use an integer >= 0`);
  }
  // A depth beyond the last unit prefetches the same as one that reaches it.
  const depth = Math.min(x.prefetchDepth, Math.max(0, units.length - 1));
  const shard = x.strategy === 'ddp' ? 1 : S;
  const padded = units.reduce((sum, u) => sum + u.elements, 0);

  const gathers = x.strategy === 'mics' || x.strategy === 'zero3' || x.strategy === 'hsdp';
  // The layers' units are alike: each cost is computed once per unit size, not once per unit.
  const memo = (cost: (elements: number) => CollectiveCost): ((elements: number) => CollectiveCost) => {
    const known = new Map<number, CollectiveCost>();
    return (elements) => {
      let c = known.get(elements);
      if (c === undefined) known.set(elements, (c = cost(elements)));
      return c;
    };
  };
  const gatherCost = memo((elements: number): CollectiveCost => {
    if (!gathers || S === 1) return NO_COST;
    const bytes = elements * x.gatherBytes;
    return groups.hierarchical
      ? hierarchicalAllGather(cluster, bytes, groups.nodesPerPartition)
      : ringCollective(cluster, 'allGather', bytes, groups.partition);
  });
  const reduceScatterCost = memo((elements: number): CollectiveCost => {
    if (x.strategy === 'ddp') return NO_COST;
    const bytes = elements * x.reduceBytes;
    return groups.hierarchical
      ? hierarchicalReduceScatter(cluster, bytes, groups.nodesPerPartition)
      : ringCollective(cluster, 'reduceScatter', bytes, groups.partition);
  });
  const perMicroStepAllReduce = x.strategy === 'hsdp' && !x.deferAllReduce;
  const shardAllReduceCost = memo((elements: number): CollectiveCost =>
    ringCollective(cluster, 'allReduce', (elements / S) * x.reduceBytes, groups.replication));

  const comm = { allGather: 0, reduceScatter: 0, allReduce: 0, latency: 0 };
  const account = (kind: 'allGather' | 'reduceScatter' | 'allReduce', c: CollectiveCost): CollectiveCost => {
    comm[kind] += c.time;
    comm.latency += c.latency;
    return c;
  };

  const stream = new CommStream();
  let now = 0;
  let computeTime = 0;
  const U = units.length;
  // Every micro-step starts on an idle stream (the previous one is drained), so all
  // of them take the same time and move the same bytes: one is simulated and the
  // totals are scaled by the accumulation steps, which then cost nothing to add.
  const accumulation = x.accumulation;
  {
    // One micro-step. Forward. d + 1 buffers: the unit computing and d prefetched; releasing a unit issues the next gather.
    const gatherOps: CommOp[] = new Array<CommOp>(U);
    const issueGather = (k: number, at: number): void => {
      gatherOps[k] = stream.issue(at, account('allGather', gatherCost(units[k].elements)));
    };
    for (let k = 0; k <= Math.min(depth, U - 1); k++) issueGather(k, now);
    let t = now;
    for (let k = 0; k < U; k++) {
      t = Math.max(t, stream.complete(gatherOps[k])) + units[k].forwardSeconds;
      computeTime += units[k].forwardSeconds;
      if (k + depth + 1 < U) issueGather(k + depth + 1, t);
    }
    // Backward, in reverse order, re-gathering each unit.
    const regather: CommOp[] = new Array<CommOp>(U);
    const issueRegather = (k: number, at: number): void => {
      regather[k] = stream.issue(at, account('allGather', gatherCost(units[k].elements)));
    };
    for (let k = U - 1; k >= Math.max(0, U - 1 - depth); k--) issueRegather(k, t);
    for (let k = U - 1; k >= 0; k--) {
      t = Math.max(t, stream.complete(regather[k])) + units[k].backwardSeconds;
      computeTime += units[k].backwardSeconds;
      // The released buffer's prefetch goes first, then the gradient's reduce-scatter.
      if (k - depth - 1 >= 0) issueRegather(k - depth - 1, t);
      stream.issue(t, account('reduceScatter', reduceScatterCost(units[k].elements)));
      if (perMicroStepAllReduce) stream.issue(t, account('allReduce', shardAllReduceCost(units[k].elements)));
    }
    now = Math.max(t, stream.drain());
  }
  const microSteps = now * accumulation;
  computeTime *= accumulation;
  comm.allGather *= accumulation;
  comm.reduceScatter *= accumulation;
  comm.allReduce *= accumulation;
  comm.latency *= accumulation;
  stream.intraBytes *= accumulation;
  stream.interBytes *= accumulation;

  // Boundary: the replication all-reduce (MiCS hop 2, DDP, deferred HSDP) or ZeRO-2's parameter gather, then the optimizer.
  let boundaryComm: CollectiveCost = NO_COST;
  if (x.strategy === 'zero2') {
    boundaryComm = account('allGather', ringCollective(cluster, 'allGather', padded * x.gatherBytes, groups.partition));
  } else if (groups.replicationSize > 1 && !perMicroStepAllReduce) {
    boundaryComm = account('allReduce', shardAllReduceCost(padded));
  }
  const optimizer = ((padded / shard) * x.optimizerBytesPerParameter) / cluster.device.memoryBandwidth;
  const boundaryTime = boundaryComm.time + optimizer;
  const bytes = addCosts({ time: 0, latency: 0, intraBytesPerGpu: stream.intraBytes, interBytesPerNode: stream.interBytes }, boundaryComm);
  return {
    groups,
    stepTime: microSteps + boundaryTime,
    computeTime,
    exposedCommTime: Math.max(0, microSteps - computeTime) + boundaryComm.time,
    boundaryTime,
    comm,
    intraBytesPerGpu: bytes.intraBytesPerGpu,
    interBytesPerNode: bytes.interBytesPerNode,
  };
}

/** Predicts one optimizer step of `setup`. */
export function predictStep(setup: StepSetup): StepPrediction {
  const { cluster, model } = setup;
  check(setup);
  const groups = strategyGroups(setup);
  const S = groups.partitionSize;
  const W = setup.worldSize;
  const recompute = setup.recompute ?? true;
  const precision = precisionOf(setup.accounting ?? 'engine', setup.reduceDtype);
  const depth = setup.prefetchDepth ?? 1;
  const b = setup.microBatch, seq = setup.sequence, m = setup.accumulation;
  // DDP shards nothing; the other strategies pad units to their shard size.
  const shard = setup.strategy === 'ddp' ? 1 : S;
  const granularity = setup.granularity ?? 'layer';
  const kinds = unitKinds(model, shard, granularity, b, seq);
  const { padded, largest } = totalsOfKinds(kinds, model.layers);

  const flopsPerMicroStep = trainingFlops(model, b, seq, recompute);
  // Measured compute (calibration) is spread over units in proportion to their FLOPs.
  const secondsPerFlop =
    setup.computeSecondsPerMicroStep !== undefined
      ? setup.computeSecondsPerMicroStep / flopsPerMicroStep
      : 1 / (cluster.device.peakFlops * cluster.device.computeEfficiency);
  const timedUnit = (u: { elements: number; forwardFlops: number }, recomputed: boolean): TimedUnit => ({
    elements: u.elements,
    forwardSeconds: u.forwardFlops * secondsPerFlop,
    backwardSeconds: u.forwardFlops * secondsPerFlop * (recomputed ? 3 : 2),
  });
  // The units of parameterUnits() in forward order; every layer repeats the same (shared) units.
  // The output projection is not recomputed; layers are when recomputation is on.
  const layer = kinds.layer.map((u) => timedUnit(u, recompute));
  const timed: TimedUnit[] = new Array<TimedUnit>(1 + model.layers * layer.length);
  timed[0] = timedUnit(kinds.embeddings, false);
  for (let l = 0, i = 1; l < model.layers; l++) for (const u of layer) timed[i++] = u;
  const schedule = simulateUnits({
    cluster,
    worldSize: W,
    strategy: setup.strategy,
    partitionSize: setup.partitionSize,
    hierarchical: setup.hierarchical,
    units: timed,
    accumulation: m,
    gatherBytes: precision.gatherBytes,
    reduceBytes: precision.reduceBytes,
    optimizerBytesPerParameter: precision.optimizerBytesPerParameter,
    prefetchDepth: depth,
    deferAllReduce: setup.deferAllReduce,
  });

  const memory = memoryPerGpu({
    model,
    paddedParameters: padded,
    largestUnit: largest,
    shardSize: shard,
    gathersParameters: setup.strategy !== 'zero2' && setup.strategy !== 'ddp',
    replicatedParameters: setup.strategy === 'zero2',
    precision,
    prefetchDepth: depth,
    microBatch: b,
    sequence: seq,
    recompute,
    attention: setup.attention,
    deviceMemoryBytes: cluster.device.memoryBytes,
    runtimeReserveBytes: cluster.runtimeReserveBytes,
    fragmentation: setup.fragmentation ?? 0.1,
  });

  const samples = W * b * m;
  const stepTime = schedule.stepTime;
  return {
    strategy: setup.strategy,
    worldSize: W,
    partitionSize: S,
    replicationSize: groups.replicationSize,
    hierarchical: groups.hierarchical,
    microBatch: b,
    accumulation: m,
    stepTime,
    computeTime: schedule.computeTime,
    exposedCommTime: schedule.exposedCommTime,
    boundaryTime: schedule.boundaryTime,
    comm: schedule.comm,
    tflopsPerGpu: (flopsPerMicroStep * m) / stepTime / 1e12,
    modelTflopsPerGpu: (trainingFlops(model, b, seq, false) * m) / stepTime / 1e12,
    samplesPerSecond: samples / stepTime,
    tokensPerSecond: (samples * seq) / stepTime,
    intraBytesPerGpu: schedule.intraBytesPerGpu,
    interBytesPerNode: schedule.interBytesPerNode,
    memory,
  };
}

function check(setup: StepSetup): void {
  const positiveInt = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1) throw invalidArgument(`${name} ${v} is not valid: use a positive integer`);
  };
  positiveInt('micro-batch', setup.microBatch);
  positiveInt('sequence length', setup.sequence);
  positiveInt('accumulation steps', setup.accumulation);
  if (setup.prefetchDepth !== undefined && (!Number.isInteger(setup.prefetchDepth) || setup.prefetchDepth < 0)) {
    throw invalidArgument(`prefetch depth ${setup.prefetchDepth} is not valid: use an integer >= 0`);
  }
  const f = setup.fragmentation;
  if (f !== undefined && (!(f >= 0) || f >= 1)) throw invalidArgument(`fragmentation margin ${f} is not valid: use a fraction in [0, 1)`);
  if (setup.attention !== undefined && !ATTENTION_KERNELS.includes(setup.attention)) {
    throw invalidArgument(`attention ${valueText(setup.attention)} is not valid: use ${ATTENTION_KERNELS.join(' or ')}`);
  }
}
