/**
 * The MiCS training engine: sharded model states, gather/release of parameter
 * units with prefetch, two-hop gradient synchronisation, mixed precision with
 * loss scaling, and the optimizer on shards. ZeRO-3 (partitionSize = W), DDP
 * (partitionSize = 1) and MiCS (anything between) are the same code over other
 * groups; host and device buffers sit behind EngineBackend.
 *
 * Per rank, for the 1/S slice of every unit it owns (the "shard space"): the
 * parameter shard in the gather dtype, the fp32 master weights (the same buffer in
 * fp32), the fp32 gradient accumulator and the optimizer states. Full parameters
 * exist only while a unit is gathered.
 *
 * Scaling of the two hops: both hops SUM (reduce-scatter in the partition group
 * every micro-step, all-reduce in the replication group at the boundary); the
 * optimizer then multiplies the gradient once by 1 / (W x accumulationSteps x
 * lossScale), so it sees the mean over all W ranks and all micro-steps of the
 * per-micro-batch gradients. Hand back the gradient of your micro-batch's MEAN loss
 * (times engine.lossScale in fp16).
 *
 * Order of collectives: every rank must issue the same collectives on a
 * communicator in the same order. The engine issues them in the order of the
 * caller's calls, through one chain (`issue`), even when an op first waits for a
 * local kernel (a cast): nothing depends on timing.
 */
import { createHash } from 'node:crypto';
import { elementBytes, type DType } from '../core/dtypes';
import { MicsError, booleanOption, describeValue, invalidArgument, optionsObject, toMicsError, valueText } from '../core/errors';
import { allGather, reduceScatter } from '../comm/collectives';
import { Communicator, ranksByValue } from '../comm/communicator';
import { createGroups, destroyGroups, type MicsGroups } from '../comm/mics-groups';
import type { PartitionChoice } from '../plan/planner';
import { DeviceTensor } from '../cuda/device-tensor';
import { accumulatesInReduceScatter, backendFor, gatherDtypeOf, type EngineBackend, type FloatDType, type HalfDType } from './backend';
import { BufferPool } from './buffer-pool';
import { beginSave, exportWeights, importWeights, loadCheckpoint, saveCheckpoint } from './checkpoint';
import type { ExportOptions, ExportResult, ImportResult, LoadOptions, LoadResult, PendingSave, SaveOptions, SaveResult } from './checkpoint/types';
import { initialValues } from './initial-values';
import { planLayout, unitSegments, type ModelLayout, type UnitLayout } from './layout';
import { choosePartitionForEngine } from './partition';
import { DynamicLossScaler } from './loss-scaler';
import { resolveGroups, resolveOptimizer, type ResolvedGroup, type ResolvedOptimizer } from './optimizer';
import { makeSchedule, type Schedule, type ScheduleSpec } from './schedule';
import { nowMicros, StatsRecorder, type StepStats, type TraceEvent } from './stats';
import type {
  EngineInit,
  EngineState,
  EngineMemory,
  EngineOptions,
  EngineTensor,
  GatheredUnit,
  GradientBuffer,
  Precision,
  StepResult,
} from './types';

type Buf = EngineTensor | Float64Array | BigInt64Array | Int32Array | Uint8Array;

/**
 * The key of the engine's own memory, for `mics bench step --overhead` (not exported
 * from the package): its replay and its parts timed alone run on these buffers, so they
 * read and write the same pages as the engine's step. Other allocations of the same
 * sizes run a few percent faster or slower by where their pages lie.
 */
export const ownBuffers = Symbol('mics.engine.ownBuffers');

/** What {@link ownBuffers} gives: the engine's shards and some of its pooled full buffers. */
export interface EngineOwnBuffers<B> {
  params: B;
  master: B;
  accumulator: B;
  expAvg: B | undefined;
  expAvgSq: B | undefined;
  normScratch: B;
  /**
   * `count` buffers of `length` elements from the engine's pool of `dtype`, allocated
   * there when it has fewer. They stay the pool's: the engine's next step uses them too,
   * so use them only between steps.
   */
  pooled(dtype: DType, length: number, count: number): B[];
}

interface UnitState {
  /** The gathered full parameters (held, prefetched or persistent). */
  full?: Buf;
  /** The all-gather filling `full`. */
  gathering?: Promise<void>;
  /** The caller holds it (between gather and release). */
  held: boolean;
  /** Gathered or asked for in this micro-step (a gradient is only accepted then). */
  gatheredThisMicroStep: boolean;
  /** The optimizer step whose parameters the last gather() returned (-1: none since the start or a load). */
  gatheredAtStep: number;
  /** The gradient buffer handed out by gradientBuffer() (reduce dtype). */
  gradBuffer?: Buf;
  /** This micro-step's gradient was handed back. */
  gradReceived: boolean;
}

interface OptimizerRun {
  offset: number;
  length: number;
  group: ResolvedGroup;
}

/** Elements exportState copies between yields to the event loop (16 MiB of f32). */
const SNAPSHOT_PIECE = 1 << 22;
const FLOAT_DTYPES: readonly FloatDType[] = ['f32', 'bf16', 'f16'];

function checkCount(what: string, value: unknown, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || (v as number) < min) {
    throw invalidArgument(`${what} ${valueText(value)} is not valid: use an integer >= ${min}`);
  }
  return v as number;
}

/**
 * Creates the engine over the MiCS groups of this rank. Collective over the world:
 * every rank calls it with the same parameters and options.
 *
 * Given the world communicator instead of groups, the engine makes its groups (and
 * destroys them with itself), with `options.partitionSize`: by default 'auto', the
 * smallest partition size whose memory holds the model states (see
 * {@link Engine.partitionChoice}).
 */
export async function createEngine<T extends EngineTensor = Float32Array>(
  groupsOrWorld: MicsGroups | Communicator,
  options: EngineOptions,
): Promise<Engine<T>> {
  if (!options || typeof options !== 'object') throw invalidArgument('createEngine(groups, options): options are required');
  if (groupsOrWorld instanceof Communicator) return createOwningEngine<T>(groupsOrWorld, options);
  const groups = groupsOrWorld;
  if (!groups || typeof groups !== 'object' || !groups.partition || !groups.replication || !groups.world) {
    throw invalidArgument('createEngine(groups, options): groups must be the result of createGroups(world, ...), or pass the world communicator');
  }
  for (const key of ['partitionSize', 'hierarchical', 'deviceMemoryBytes'] as const) {
    if (options[key] !== undefined && !(key === 'partitionSize' && options[key] === groups.partition.size)) {
      throw invalidArgument(
        `createEngine(groups, options): option ${key} is for createEngine(world, options); ` +
          `these groups already have partition size ${groups.partition.size}`,
      );
    }
  }
  const engine = new Engine<T>(groups, options);
  await engine.initialise(options.init);
  return engine;
}

/** createEngine(world, options): the engine makes (and later destroys) its groups, choosing S when asked. */
async function createOwningEngine<T extends EngineTensor>(world: Communicator, options: EngineOptions): Promise<Engine<T>> {
  const choice = await choosePartitionForEngine(world, options);
  const partitionSize = typeof choice === 'number' ? choice : choice.partitionSize;
  const groups = await createGroups(world, { partitionSize, hierarchical: options.hierarchical });
  try {
    const engine = new Engine<T>(groups, options, { ownsGroups: true, partitionChoice: typeof choice === 'number' ? undefined : choice });
    await engine.initialise(options.init);
    return engine;
  } catch (err) {
    destroyGroups(groups);
    throw err;
  }
}

/** Ends a micro-step and, at the accumulation boundary, runs the optimizer; see {@link Engine.step}. */
export function step(engine: Engine<EngineTensor>): Promise<StepResult> {
  if (!(engine instanceof Engine)) return Promise.reject(invalidArgument('step(engine): engine must come from createEngine()'));
  return engine.step();
}

/** The engine of one rank. Create it with {@link createEngine}. */
export class Engine<T extends EngineTensor = Float32Array> {
  readonly groups: MicsGroups;
  readonly layout: ModelLayout;
  readonly optimizer: ResolvedOptimizer;
  readonly accumulationSteps: number;
  readonly clipGradNorm: number | undefined;
  readonly prefetch: number;
  readonly persistenceThreshold: number;
  readonly precision: Precision;
  /** The dtype of gathered parameters (f32, bf16 or f16). */
  readonly gatherDtype: FloatDType;
  /** The dtype of gradient buffers and of the reduce-scatter. */
  readonly reduceDtype: FloatDType;
  /** The schedule as data (undefined for a user function). */
  readonly schedule: ScheduleSpec | undefined;
  /** With createEngine(world, {partitionSize: 'auto'}): the planner's choice of S, and why. */
  readonly partitionChoice: PartitionChoice | undefined;

  private readonly backend: EngineBackend<Buf>;
  private readonly scheduleFn: Schedule;
  private readonly paramGroups: ResolvedGroup[];
  private readonly runs: OptimizerRun[];
  private readonly params: Buf;
  private readonly master: Buf;
  private readonly accumulator: Buf;
  private readonly expAvg?: Buf;
  private readonly expAvgSq?: Buf;
  private readonly momentum?: Buf;
  private readonly scaler: DynamicLossScaler | undefined;
  private readonly pools = new Map<DType, BufferPool<Buf>>();
  private readonly state: UnitState[];
  private readonly pending = new Set<Promise<void>>();
  private readonly stats: StatsRecorder;
  private readonly normScratch: Buf;
  private readonly flagScratch: Buf;
  /** Resolves once every collective asked for so far has been issued (see the module notes). */
  private issued: Promise<void> = Promise.resolve();
  /** Collectives in that chain not yet issued (each waits for a `prepare` or for one that does). */
  private waitingToIssue = 0;
  private lastGathered: number | undefined;
  private direction = 1;
  private micro = 0;
  private steps = 0;
  private failure: MicsError | undefined;
  private destroyed = false;
  /** Made by createEngine(world, ...): destroy() destroys the groups too. */
  private readonly ownsGroups: boolean;
  /** A checkpoint's copy of the model states in progress: the optimizer waits for it. */
  private snapshotting: Promise<unknown> | undefined;

  /** @internal Use createEngine(). */
  constructor(groups: MicsGroups, options: EngineOptions, ownership: { ownsGroups: boolean; partitionChoice?: PartitionChoice } = { ownsGroups: false }) {
    this.groups = groups;
    this.ownsGroups = ownership.ownsGroups;
    this.partitionChoice = ownership.partitionChoice;
    const S = groups.partition.size;
    this.layout = planLayout(options.parameters, S, { ...options.units, alignment: options.alignment });
    this.optimizer = resolveOptimizer(options.optimizer);
    this.accumulationSteps = checkCount('accumulationSteps', options.accumulationSteps, 1, 1);
    this.prefetch = checkCount('prefetch', options.prefetch, 1, 0);
    this.persistenceThreshold = checkCount('persistenceThreshold', options.persistenceThreshold, 100_000, 0);
    const clip = options.clipGradNorm;
    if (clip !== undefined && (typeof clip !== 'number' || !(clip > 0) || !Number.isFinite(clip))) {
      throw invalidArgument(`clipGradNorm ${valueText(clip)} is not valid: use a positive number, or leave it out to not clip`);
    }
    this.clipGradNorm = clip;
    this.gatherDtype = gatherDtypeOf(options.precision);
    this.precision = options.precision ?? 'fp32';
    this.reduceDtype = options.reduceDtype ?? 'f32';
    if (!FLOAT_DTYPES.includes(this.reduceDtype)) {
      throw invalidArgument(`reduceDtype '${valueText(options.reduceDtype)}' is not valid: use 'f32', 'bf16' or 'f16'`);
    }
    if (options.lossScaling !== undefined && this.precision !== 'fp16') {
      throw invalidArgument(`lossScaling is for precision 'fp16' only (precision is '${this.precision}')`);
    }
    this.scaler = this.precision === 'fp16' ? new DynamicLossScaler(options.lossScaling) : undefined;
    this.scheduleFn = makeSchedule(options.schedule);
    this.schedule = this.scheduleFn.spec;
    const { groups: resolvedGroups, groupOf } = resolveGroups(this.layout.parameters, this.optimizer, options.paramGroups);
    this.paramGroups = resolvedGroups;
    this.runs = this.optimizerRuns(groupOf);
    this.stats = new StatsRecorder(groups.world.rank, options.trace === true);

    const comm = groups.partition;
    this.backend = backendFor(comm) as unknown as EngineBackend<Buf>;
    const n = this.layout.shardNumel;
    this.params = this.backend.alloc(this.gatherDtype, n);
    this.master = this.gatherDtype === 'f32' ? this.params : this.backend.alloc('f32', n);
    this.accumulator = this.backend.alloc('f32', n);
    if (this.optimizer.type === 'adamw') {
      this.expAvg = this.backend.alloc('f32', n);
      this.expAvgSq = this.backend.alloc('f32', n);
    } else if (this.optimizer.momentum !== 0) {
      this.momentum = this.backend.alloc('f32', n);
    }
    this.normScratch = this.backend.alloc('f64', 1);
    this.flagScratch = this.backend.alloc('i32', 1);
    this.state = this.layout.units.map(() => ({ held: false, gatheredThisMicroStep: false, gatheredAtStep: -1, gradReceived: false }));
  }

  /** The units, in registry order. */
  get units(): readonly UnitLayout[] {
    return this.layout.units;
  }
  /** Optimizer steps taken so far. */
  get stepCount(): number {
    return this.steps;
  }
  /** Micro-steps into the current accumulation window. */
  get microStep(): number {
    return this.micro;
  }
  /** The world size W. */
  get worldSize(): number {
    return this.groups.world.size;
  }
  /** Multiply the loss (and so the gradients you hand back) by this (fp16; 1 otherwise). */
  get lossScale(): number {
    return this.scaler?.scale ?? 1;
  }

  // ---------------------------------------------------------------- set-up

  /** @internal Fills the parameter shards and checks that replicas agree. */
  async initialise(init: EngineInit | undefined): Promise<void> {
    const segments = this.layout.segments(this.groups.partition.rank);
    if (init !== undefined && (typeof init !== 'object' || init === null)) throw invalidArgument('init must be {seed} or {weights, from?}');
    if (init !== undefined && 'weights' in init) {
      const from = init.from ?? 'every-rank';
      if (from !== 'every-rank' && from !== 'rank0') throw invalidArgument(`init.from '${valueText(from)}' is not valid: use 'every-rank' or 'rank0'`);
      if (from === 'rank0') {
        await this.broadcastWeights(this.groups.world.rank === 0 ? init.weights : undefined);
      } else {
        const weights = this.checkWeights(init.weights);
        for (const s of segments) {
          if (s.parameter) this.backend.write(this.backend.view(this.master, s.offset, s.length), sliceOf(weights[s.parameter.name], s.parameterOffset, s.length));
        }
      }
    } else {
      const seed = init?.seed ?? 0;
      if (!Number.isSafeInteger(seed)) throw invalidArgument(`init.seed ${valueText(seed)} is not valid: use an integer`);
      for (const s of segments) {
        if (s.parameter) this.backend.write(this.backend.view(this.master, s.offset, s.length), initialValues(s.parameter, seed, s.parameterOffset, s.length));
      }
    }
    if (this.master !== this.params) await this.backend.cast(this.params, this.gatherDtype, this.master, 'f32');
    await this.agreeOnDefinition();
    await this.verifyReplicas();
  }

  /**
   * Checks that every rank defined the same training: parameters (names, shapes,
   * units), dtypes, accumulation steps, clipping and optimizer. Ranks that differ
   * would otherwise run collectives of equal padded sizes on different data, silently,
   * or reach their accumulation boundaries at different micro-steps and hang. One
   * hash per rank, gathered over the world.
   * @throws MicsError MICS_MISMATCH on every rank, naming the world ranks that differ.
   */
  private async agreeOnDefinition(): Promise<void> {
    const world = this.groups.world;
    if (world.size === 1) return;
    const definition = JSON.stringify({
      units: this.layout.units.map((u) => [u.name, u.paddedNumel, u.parameters.map((p) => [p.name, p.shape])]),
      precision: this.precision,
      gatherDtype: this.gatherDtype,
      reduceDtype: this.reduceDtype,
      accumulationSteps: this.accumulationSteps,
      clipGradNorm: this.clipGradNorm ?? null,
      optimizer: this.optimizer,
      paramGroups: this.paramGroups.map((g) => [g.lr, g.weightDecay]),
    });
    const hashes = await this.hashOfEveryRank(createHash('sha256').update(definition).digest().readBigInt64LE(0));
    const differing = differingRanks(hashes, hashes.keys());
    if (differing !== undefined) {
      throw new MicsError(
        `the ranks define different models or training options (world ranks ${differing}): ` +
          'every rank must pass the same parameters (names, shapes, units), precision, accumulationSteps, clipGradNorm, optimizer and paramGroups to createEngine',
        'MICS_MISMATCH',
        { rank: world.rank, group: world.name, op: 'createEngine' },
      );
    }
  }

  private checkWeights(weights: unknown): Readonly<Record<string, ArrayLike<number>>> {
    if (typeof weights !== 'object' || weights === null) throw invalidArgument('init.weights must be an object of arrays by parameter name');
    const record = weights as Record<string, ArrayLike<number>>;
    const known = new Set(this.layout.parameters.map((p) => p.name));
    for (const name of Object.keys(record)) {
      if (!known.has(name)) throw invalidArgument(`init.weights has '${name}', which is not a parameter`);
    }
    for (const p of this.layout.parameters) {
      const values = record[p.name];
      if (values === undefined) throw invalidArgument(`init.weights has no values for parameter '${p.name}'`);
      if (typeof values.length !== 'number' || values.length !== p.numel) {
        throw invalidArgument(`init.weights['${p.name}'] has ${valueText(values.length)} values; shape [${p.shape.join(', ')}] needs ${p.numel}`);
      }
      // A TypedArray holds numbers; a plain array may not (a string would become NaN).
      if (!ArrayBuffer.isView(values)) {
        for (let i = 0; i < p.numel; i++) {
          if (typeof values[i] !== 'number') {
            throw invalidArgument(`init.weights['${p.name}'][${i}] is ${describeValue(values[i])}: weights must be numbers`);
          }
        }
      }
    }
    return record;
  }

  /** World rank 0's weights to every rank, one unit at a time (fp32). */
  private async broadcastWeights(weights: Readonly<Record<string, ArrayLike<number>>> | undefined): Promise<void> {
    const checked = weights === undefined ? undefined : this.checkWeights(weights);
    for (const u of this.layout.units) {
      const full = this.backend.alloc('f32', u.paddedNumel);
      if (checked) {
        const host = new Float32Array(u.paddedNumel);
        for (const p of u.parameters) host.set(sliceOf(checked[p.name], 0, p.numel), p.offset);
        this.backend.write(full, host);
      }
      await this.guard(this.groups.world.broadcast(this.backend.tensor(full, 'f32'), { root: 0 }));
      const begin = this.groups.partition.rank * u.shardNumel;
      this.backend.copy(this.shardOf(this.master, u), this.backend.view(full, begin, u.shardNumel));
    }
  }

  /**
   * Checks that every replica of every slice holds the same master weights (a hash
   * per rank, gathered over the world). Collective over the world.
   * @throws MicsError MICS_MISMATCH on every rank, naming the world ranks that differ.
   */
  async verifyReplicas(): Promise<void> {
    this.ensureUsable('verifyReplicas');
    const world = this.groups.world;
    if (this.groups.replication.size === 1) return;
    const hashes = await this.hashOfEveryRank(BigInt.asIntN(64, BigInt(`0x${await this.backend.checksum(this.master)}`)));
    const problems: string[] = [];
    this.groups.layout.replicationGroups.forEach((members, slice) => {
      const differing = differingRanks(hashes, members);
      if (differing !== undefined) problems.push(`slice ${slice}: world ranks ${differing}`);
    });
    if (problems.length > 0) {
      throw new MicsError(
        `the replicas of the parameters differ (${problems.join('; ')} hold different values): every rank must start ` +
          'from the same model (the same seed, or the same weights on every rank)',
        'MICS_MISMATCH',
        { rank: world.rank, group: this.groups.replication.name, op: 'verifyReplicas' },
      );
    }
  }

  /** Every world rank's `hash`, in world rank order (one i64 each, all-gathered over the world). */
  private async hashOfEveryRank(hash: bigint): Promise<bigint[]> {
    const mine = this.backend.alloc('i64', 1);
    const all = this.backend.alloc('i64', this.groups.world.size);
    writeBig(mine, hash);
    await this.guard(this.groups.world.allGather(this.backend.tensor(mine, 'i64'), this.backend.tensor(all, 'i64')));
    return readBig(all);
  }

  // ---------------------------------------------------------------- gather / release

  /**
   * All-gathers a unit's full parameters (hierarchically when the groups are) and
   * returns views by name (in the gather dtype), valid until release(unit) or the
   * next optimizer step. The next `prefetch` units in the direction of travel are
   * gathered meanwhile. Collective over the partition group.
   */
  async gather(unit: number | string | UnitLayout): Promise<GatheredUnit<T>> {
    const entered = this.stats.enter();
    try {
      this.ensureUsable('gather');
      const u = this.resolveUnit(unit, 'gather');
      const state = this.state[u.index];
      state.gatheredThisMicroStep = true;
      state.gatheredAtStep = this.steps;
      this.startGather(u);
      this.prefetchAfter(u.index);
      await state.gathering;
      this.ensureUsable('gather');
      this.stats.waited('gatherWaitMs', entered);
      state.held = true;
      const full = state.full as T;
      const params: Record<string, T> = {};
      for (const p of u.parameters) params[p.name] = this.backend.view(full, p.offset, p.numel) as T;
      return { unit: u, flat: full, params };
    } finally {
      this.stats.leave();
    }
  }

  /**
   * Counts as this micro-step's gather of `unit` without communicating, for a caller
   * that keeps its own full copy of the parameters (a framework whose variables hold
   * them, as tfjs's do) and gathered them earlier in this accumulation window.
   * Returns false, and counts nothing, when the unit was not gathered since the last
   * optimizer step (which changed the parameters) or checkpoint load: gather it then.
   * Gathers are collective: every rank of the partition group must make the same
   * choice in the same micro-step (the answer is the same on every rank that made
   * the same calls).
   */
  reuseGathered(unit: number | string | UnitLayout): boolean {
    this.ensureUsable('reuseGathered');
    const u = this.resolveUnit(unit, 'reuseGathered');
    const state = this.state[u.index];
    if (state.gatheredAtStep !== this.steps) return false;
    state.gatheredThisMicroStep = true;
    return true;
  }

  /** Gathers every unit (for models that fit); views by parameter name. */
  async gatherAll(): Promise<Readonly<Record<string, T>>> {
    const out: Record<string, T> = {};
    for (const u of this.layout.units) Object.assign(out, (await this.gather(u)).params);
    return out;
  }

  /**
   * Frees a unit's full buffer (kept for reuse). Units of at most
   * `persistenceThreshold` elements stay gathered until the next optimizer step.
   */
  release(unit: number | string | UnitLayout): void {
    this.ensureUsable('release');
    const u = this.resolveUnit(unit, 'release');
    const state = this.state[u.index];
    if (!state.held) throw invalidArgument(`release('${u.name}'): the unit is not gathered (call gather('${u.name}') first)`);
    state.held = false;
    if (u.numel > this.persistenceThreshold) this.dropGathered(u);
  }

  /** Releases every gathered unit. */
  releaseAll(): void {
    for (const u of this.layout.units) if (this.state[u.index].held) this.release(u);
  }

  /**
   * The full, consolidated fp32 master weights by name, as fresh Float32Arrays (for
   * export and framework adapters). Collective over the partition group.
   */
  async fullParameters(): Promise<Record<string, Float32Array>> {
    this.ensureUsable('fullParameters');
    const out: Record<string, Float32Array> = {};
    const S = this.groups.partition.size;
    for (const u of this.layout.units) {
      let host: Float32Array;
      if (S === 1) {
        host = this.backend.read(this.shardOf(this.master, u));
      } else {
        const full = this.pool('f32').take(u.paddedNumel);
        await this.guard(
          this.issue(() => allGather(this.groups, this.backend.tensor(this.shardOf(this.master, u), 'f32'), this.backend.tensor(full, 'f32'))),
        );
        host = this.backend.read(full);
        this.pool('f32').give(full);
      }
      for (const p of u.parameters) out[p.name] = host.slice(p.offset, p.offset + p.numel);
    }
    return out;
  }

  private startGather(u: UnitLayout): void {
    const state = this.state[u.index];
    if (state.full !== undefined) return;
    const S = this.groups.partition.size;
    if (S === 1) {
      // The shard is the whole unit: nothing to gather, the views are the parameters.
      state.full = this.shardOf(this.params, u);
      state.gathering = Promise.resolve();
      return;
    }
    const full = this.pool(this.gatherDtype).take(u.paddedNumel);
    state.full = full;
    const dtype = this.gatherDtype;
    this.countGather(u);
    const tracing = this.stats.tracing;
    const started = tracing ? nowMicros() : 0;
    const gathering = this.issue(() => allGather(this.groups, this.backend.tensor(this.shardOf(this.params, u), dtype), this.backend.tensor(full, dtype)));
    state.gathering = this.track(tracing ? gathering.then(() => this.stats.event('gather', `allGather ${u.name}`, started)) : gathering);
  }

  private countGather(u: UnitLayout): void {
    const bytes = u.shardNumel * elementBytes(this.gatherDtype);
    const { intraNode, interNode } = this.groups;
    if (intraNode && interNode) {
      const N = interNode.size;
      const G = intraNode.size;
      this.stats.moved('interNode', 'allGather', (N - 1) * bytes);
      this.stats.moved('intraNode', 'allGather', (G - 1) * N * bytes);
    } else {
      this.stats.moved('partition', 'allGather', (this.groups.partition.size - 1) * bytes);
    }
  }

  private countReduce(u: UnitLayout, dtype: DType): void {
    const bytes = u.shardNumel * elementBytes(dtype);
    const { intraNode, interNode } = this.groups;
    if (intraNode && interNode) {
      // Stage 1 inside the node (N ops of G blocks), stage 2 across nodes on 1/G of the bytes.
      const N = interNode.size;
      const G = intraNode.size;
      this.stats.moved('intraNode', 'reduceScatter', (G - 1) * N * bytes);
      this.stats.moved('interNode', 'reduceScatter', (N - 1) * bytes);
    } else {
      this.stats.moved('partition', 'reduceScatter', (this.groups.partition.size - 1) * bytes);
    }
  }

  private prefetchAfter(index: number): void {
    if (this.lastGathered !== undefined && index !== this.lastGathered) this.direction = index > this.lastGathered ? 1 : -1;
    else if (this.lastGathered === index) this.direction = -this.direction; // the turn from forward to backward
    this.lastGathered = index;
    for (let k = 1; k <= this.prefetch; k++) {
      const next = index + k * this.direction;
      if (next < 0 || next >= this.layout.units.length) break;
      this.startGather(this.layout.units[next]);
    }
  }

  private dropGathered(u: UnitLayout): void {
    const state = this.state[u.index];
    const full = state.full;
    state.full = undefined;
    state.gathering = undefined;
    if (full !== undefined && this.groups.partition.size > 1) this.pool(this.gatherDtype).give(full);
  }

  // ---------------------------------------------------------------- gradients

  /**
   * A buffer (reduce dtype) for a unit's full gradient, with views by parameter name:
   * write the gradient of your micro-batch's mean loss (times lossScale) into it, then
   * call reduceGradients(unit). Zero-filled by default; with `{zero: false}` only the
   * padding is zeroed and the parameters' elements hold whatever the buffer held
   * before, which saves a pass over the buffer when you overwrite every element (as a
   * framework's backward does).
   */
  gradientBuffer(unit: number | string | UnitLayout, options: { zero?: boolean } = {}): GradientBuffer<T> {
    this.ensureUsable('gradientBuffer');
    const u = this.resolveUnit(unit, 'gradientBuffer');
    const zero = booleanOption('gradientBuffer: zero', optionsObject('gradientBuffer', options, {}).zero, true);
    const buffer = this.gradientBufferOf(u, zero);
    const grads: Record<string, T> = {};
    for (const p of u.parameters) grads[p.name] = this.backend.view(buffer, p.offset, p.numel) as T;
    return { unit: u, flat: buffer as T, grads };
  }

  private gradientBufferOf(u: UnitLayout, zero = true): Buf {
    const state = this.state[u.index];
    if (state.gradBuffer === undefined) {
      state.gradBuffer = this.pool(this.reduceDtype).take(u.paddedNumel);
      // The padding is reduced with the rest: it must be zero, or the norm would count it.
      if (zero) this.backend.fill(state.gradBuffer, 0);
      else if (u.paddedNumel > u.numel) this.backend.fill(this.backend.view(state.gradBuffer, u.numel, u.paddedNumel - u.numel), 0);
    }
    return state.gradBuffer;
  }

  /**
   * Hands back a unit's gradient for this micro-step: the buffer from
   * gradientBuffer(unit) (no argument), or values by parameter name (Float32Arrays,
   * or Uint16Arrays of bits in the reduce dtype, or DeviceTensors on NCCL). Starts the
   * reduce-scatter in the partition group and the accumulation into the fp32
   * gradient shard; resolves when both are done (step() waits for every unit, so
   * awaiting is optional). Collective over the partition group.
   */
  reduceGradients(unit: number | string | UnitLayout, grads?: Readonly<Record<string, ArrayLike<number> | EngineTensor>>): Promise<void> {
    this.stats.enter();
    try {
      this.ensureUsable('reduceGradients');
      const u = this.resolveUnit(unit, 'reduceGradients');
      const state = this.state[u.index];
      if (!state.gatheredThisMicroStep) {
        throw invalidArgument(`reduceGradients('${u.name}'): the unit was not gathered in this micro-step: gather('${u.name}') before handing back its gradient`);
      }
      if (state.gradReceived) {
        throw invalidArgument(`reduceGradients('${u.name}'): the unit already has its gradient for this micro-step; call step() to end the micro-step`);
      }
      let fill: Promise<void> | undefined;
      if (grads !== undefined) fill = this.fillGradients(u, grads);
      else if (state.gradBuffer === undefined) {
        throw invalidArgument(`reduceGradients('${u.name}'): no gradient given: pass them by name, or fill gradientBuffer('${u.name}') first`);
      }
      const full = this.gradientBufferOf(u);
      state.gradBuffer = undefined;
      state.gradReceived = true;
      return this.track(this.reduceInto(u, full, this.micro === 0, fill));
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.stats.leave();
    }
  }

  /** Validates gradients by name and starts copying them into the unit's gradient buffer. */
  private fillGradients(u: UnitLayout, grads: Readonly<Record<string, ArrayLike<number> | EngineTensor>>): Promise<void> | undefined {
    if (typeof grads !== 'object' || grads === null) throw invalidArgument(`reduceGradients('${u.name}'): grads must be an object of arrays by parameter name`);
    const expected = u.parameters.map((p) => p.name);
    const missing = expected.filter((n) => !(n in grads));
    const extra = Object.keys(grads).filter((n) => !expected.includes(n));
    if (missing.length > 0 || extra.length > 0) {
      throw invalidArgument(
        `reduceGradients('${u.name}'): expected gradients for [${expected.join(', ')}]` +
          (missing.length > 0 ? `, missing [${missing.join(', ')}]` : '') +
          (extra.length > 0 ? `, not in this unit: [${extra.join(', ')}]` : ''),
      );
    }
    for (const p of u.parameters) {
      const g = grads[p.name];
      const length = typeof g === 'object' && g !== null ? (g as { length: unknown }).length : undefined;
      if (length !== p.numel) {
        throw invalidArgument(`reduceGradients('${u.name}'): gradient of '${p.name}' has ${valueText(length)} elements; shape [${p.shape.join(', ')}] needs ${p.numel}`);
      }
    }
    const buffer = this.gradientBufferOf(u, false); // every element of every parameter is written below
    const casts: Promise<void>[] = [];
    for (const p of u.parameters) {
      const g = grads[p.name];
      const view = this.backend.view(buffer, p.offset, p.numel);
      if (g === view) continue;
      if (g instanceof DeviceTensor) {
        if (g.dtype === this.reduceDtype) this.backend.copy(view, g);
        else casts.push(this.backend.cast(view, this.reduceDtype, g, g.dtype as FloatDType));
      } else if (g instanceof Uint16Array) {
        if (this.reduceDtype === 'f32') throw invalidArgument(`reduceGradients('${u.name}'): '${p.name}' is a Uint16Array but the reduce dtype is f32: pass a Float32Array`);
        (view as Uint16Array).set(g);
      } else if (this.reduceDtype === 'f32') {
        this.backend.write(view, g as ArrayLike<number>);
      } else {
        // f32 values into a half buffer: the cast kernel, from a host copy on the device path
        const source = this.backend.kind === 'host' ? Float32Array.from(g as ArrayLike<number>) : this.uploadF32(g as ArrayLike<number>);
        casts.push(this.backend.cast(view, this.reduceDtype, source as Buf, 'f32'));
      }
    }
    return casts.length === 0 ? undefined : Promise.all(casts).then(() => undefined);
  }

  private uploadF32(values: ArrayLike<number>): Buf {
    const buffer = this.backend.alloc('f32', values.length);
    this.backend.write(buffer, values);
    return buffer;
  }

  /**
   * Reduce-scatter (sum) into the accumulator: the first micro-step writes it (f32
   * straight into it; a half reduce through a temporary and a cast), later ones add
   * (f32 on the CPU backend in the reduce-scatter's own pass; otherwise through a
   * temporary and the accumulate kernel: the same bits).
   */
  private async reduceInto(u: UnitLayout, full: Buf, first: boolean, fill: Promise<void> | undefined): Promise<void> {
    const shard = this.shardOf(this.accumulator, u);
    const partition = this.groups.partition;
    const dtype = this.reduceDtype;
    const started = nowMicros();
    if (partition.size === 1) {
      await fill;
      if (first && dtype === 'f32') this.backend.copy(shard, full);
      else if (first) await this.backend.cast(shard, 'f32', full, dtype);
      else await this.backend.accumulate(shard, full, dtype);
    } else {
      this.countReduce(u, dtype);
      const accumulate = !first && accumulatesInReduceScatter(partition, dtype);
      const direct = (first && dtype === 'f32') || accumulate;
      const out = direct ? shard : this.pool(dtype).take(u.shardNumel);
      // Hierarchically when the groups are (intra-node first, then across nodes).
      await this.issue(() => reduceScatter(this.groups, this.backend.tensor(full, dtype), this.backend.tensor(out, dtype), { op: 'sum', accumulate }), fill);
      if (!direct) {
        if (first) await this.backend.cast(shard, 'f32', out, dtype);
        else await this.backend.accumulate(shard, out, dtype);
        this.pool(dtype).give(out);
      }
    }
    if (this.stats.tracing) this.stats.event('reduce', `reduceScatter ${u.name}`, started);
    this.pool(dtype).give(full);
  }

  // ---------------------------------------------------------------- step

  /**
   * Ends a micro-step. At the accumulation boundary (every `accumulationSteps`
   * calls): all-reduces the gradient shards across the replication group; in fp16
   * checks for inf/NaN on any rank and skips the update on every rank when there is
   * one; computes the global norm of the mean gradient (summed over the partition
   * group only: replicas are identical), clips, runs the optimizer on the fp32 shard
   * with the scheduled learning rate (writing the half-precision copy in the same
   * pass), and releases every gathered unit. Every unit must have handed back its
   * gradient in this micro-step. Collective over the world.
   */
  async step(): Promise<StepResult> {
    const entered = this.stats.enter();
    try {
      this.ensureUsable('step');
      const missing = this.layout.units.filter((u) => !this.state[u.index].gradReceived);
      if (missing.length === this.layout.units.length) {
        throw invalidArgument(`step(): no gradient was handed back since the last step(): call reduceGradients(unit) for every unit (${this.unitList(missing)}) first`);
      }
      if (missing.length > 0) throw invalidArgument(`step(): units ${this.unitList(missing)} have no gradient for this micro-step: call reduceGradients for them first`);
      await this.settlePending();
      this.stats.waited('reduceWaitMs', entered);
      for (const s of this.state) {
        s.gradReceived = false;
        s.gatheredThisMicroStep = false;
      }
      this.micro += 1;
      this.stats.microStep();
      if (this.micro < this.accumulationSteps) {
        return { stepped: false, skipped: false, step: this.steps, microStep: this.micro, lr: this.lrOf(this.paramGroups[0], this.steps + 1), lossScale: this.lossScale };
      }
      return await this.boundary();
    } finally {
      this.stats.leave();
    }
  }

  private async boundary(): Promise<StepResult> {
    if (this.snapshotting !== undefined) await this.snapshotting;
    const { replication, partition } = this.groups;
    const acc = this.accumulator;
    const shardBytes = this.layout.shardNumel * 4;
    let t = nowMicros();
    if (replication.size > 1) {
      this.stats.moved('replication', 'allReduce', (2 * (replication.size - 1) * shardBytes) / replication.size);
      await this.guard(this.issue(() => replication.allReduce(this.backend.tensor(acc, 'f32'), { op: 'sum' })));
      this.stats.event('allReduce', 'allReduce gradients (replication)', t);
    }
    this.stats.waited('allReduceMs', t);

    const lossScale = this.lossScale;
    if (this.scaler) {
      // An inf/NaN on any rank: after the replication all-reduce every replica has it,
      // so a MAX over the partition group reaches every rank.
      t = nowMicros();
      const overflowLocal = await this.guard(this.backend.hasNonFinite(acc));
      this.stats.waited('kernelMs', t);
      t = nowMicros();
      let overflow = overflowLocal;
      if (partition.size > 1) {
        this.backend.write(this.flagScratch, [overflowLocal ? 1 : 0]);
        await this.guard(this.issue(() => partition.allReduce(this.backend.tensor(this.flagScratch, 'i32'), { op: 'max' })));
        overflow = (this.backend.kind === 'host' ? (this.flagScratch as Int32Array)[0] : Number((this.flagScratch as DeviceTensor<'i32'>).download()[0])) !== 0;
      }
      this.stats.waited('allReduceMs', t);
      if (overflow) {
        this.scaler.update(true);
        this.endWindow(true);
        return { stepped: false, skipped: true, step: this.steps, microStep: 0, lr: this.lrOf(this.paramGroups[0], this.steps + 1), lossScale: this.lossScale };
      }
    }

    t = nowMicros();
    let sumOfSquares = await this.guard(this.backend.sumOfSquares(acc));
    this.stats.waited('kernelMs', t);
    if (partition.size > 1) {
      t = nowMicros();
      this.backend.write(this.normScratch, [sumOfSquares]);
      await this.guard(this.issue(() => partition.allReduce(this.backend.tensor(this.normScratch, 'f64'), { op: 'sum' })));
      sumOfSquares = this.backend.read64(this.normScratch)[0];
      this.stats.waited('allReduceMs', t);
    }
    const meanScale = 1 / (this.worldSize * this.accumulationSteps * lossScale);
    const gradNorm = meanScale * Math.sqrt(sumOfSquares);
    const clipCoefficient = this.clipGradNorm === undefined ? 1 : Math.min(1, this.clipGradNorm / (gradNorm + 1e-6));
    const gradScale = meanScale * clipCoefficient;

    t = nowMicros();
    const stepNumber = this.steps + 1;
    for (const run of this.runs) {
      const view = (b: Buf): Buf => this.backend.view(b, run.offset, run.length);
      const half = this.master === this.params ? undefined : { buffer: view(this.params), dtype: this.gatherDtype as HalfDType };
      const lr = this.lrOf(run.group, stepNumber);
      const o = this.optimizer;
      if (o.type === 'adamw') {
        const call = { lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: run.group.weightDecay, step: stepNumber, gradScale };
        await this.guard(this.backend.adamw(view(this.master), view(acc), view(this.expAvg as Buf), view(this.expAvgSq as Buf), call, half));
      } else {
        const call = { lr, momentum: o.momentum, dampening: o.dampening, weightDecay: run.group.weightDecay, nesterov: o.nesterov, step: stepNumber, gradScale };
        await this.guard(this.backend.sgd(view(this.master), view(acc), this.momentum === undefined ? undefined : view(this.momentum), call, half));
      }
    }
    this.stats.event('kernel', `optimizer step ${stepNumber}`, t);
    this.stats.waited('kernelMs', t);
    this.steps = stepNumber;
    this.scaler?.update(false);
    this.endWindow(false);
    return { stepped: true, skipped: false, step: this.steps, microStep: 0, lr: this.lrOf(this.paramGroups[0], stepNumber), lossScale: this.lossScale, gradNorm, clipCoefficient };
  }

  /** Ends an accumulation window: stale gathered copies go, statistics close. */
  private endWindow(skipped: boolean): void {
    this.micro = 0;
    for (const u of this.layout.units) {
      this.state[u.index].held = false;
      this.dropGathered(u);
    }
    this.lastGathered = undefined;
    this.direction = 1;
    this.stats.finishStep(skipped);
  }

  private lrOf(group: ResolvedGroup, stepNumber: number): number {
    return group.lr * this.scheduleFn.factor(stepNumber);
  }

  // ---------------------------------------------------------------- statistics, trace, memory

  /**
   * Statistics of the completed optimizer steps (the last 1000), oldest first: bytes
   * each group moved, time waiting on gathers, reductions, all-reduces and kernels,
   * and the caller's compute; `current` holds the step in progress.
   */
  statistics(): { steps: StepStats[]; current: StepStats } {
    return { steps: this.stats.steps(), current: this.stats.inProgress() };
  }

  /** This rank's timeline events (enable with `trace: true`). */
  traceEvents(): TraceEvent[] {
    return this.stats.traceEvents();
  }

  /**
   * Gathers every rank's timeline to world rank 0, which returns the Chrome
   * trace-event JSON object (write it to a file, open it in Perfetto); the others
   * get undefined. Collective over the world.
   */
  async collectTrace(): Promise<{ traceEvents: TraceEvent[]; displayTimeUnit: 'ms' } | undefined> {
    this.ensureUsable('collectTrace');
    const world = this.groups.world;
    const mine = new TextEncoder().encode(JSON.stringify(this.traceEvents()));
    if (world.size === 1) return { traceEvents: this.traceEvents(), displayTimeUnit: 'ms' };
    // Host buffers: a world on the nccl backend cannot carry them; the trace needs a cpu world.
    const lengths = new Float64Array(world.size);
    await world.allGather(Float64Array.of(mine.length), lengths);
    const longest = Math.max(...lengths);
    const padded = new Uint8Array(longest);
    padded.set(mine);
    const all = new Uint8Array(longest * world.size);
    await world.allGather(padded, all);
    if (world.rank !== 0) return undefined;
    const events: TraceEvent[] = [];
    const decoder = new TextDecoder();
    for (let r = 0; r < world.size; r++) {
      events.push(...(JSON.parse(decoder.decode(all.subarray(r * longest, r * longest + lengths[r]))) as TraceEvent[]));
    }
    return { traceEvents: events, displayTimeUnit: 'ms' };
  }

  /**
   * @internal Runs a collective of a helper built on the engine (lib/engine/metrics.ts)
   * through the engine's chain of collectives (issued after every op asked for before
   * it, the same order on every rank); a failure aborts the engine like its own ops.
   */
  runCollective(launch: () => Promise<void>): Promise<void> {
    try {
      this.ensureUsable('runCollective');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.guard(this.issue(launch));
  }

  /** Per-rank bytes of the engine's buffers (see docs/engine.md for the formula). */
  memory(): EngineMemory {
    const n = this.layout.shardNumel;
    const parameterShards = n * elementBytes(this.gatherDtype);
    const masterWeights = this.master === this.params ? 0 : n * 4;
    const optimizerStates = [this.expAvg, this.expAvgSq, this.momentum].filter((b) => b !== undefined).length * n * 4;
    const gradientAccumulators = n * 4;
    let live = 0;
    let peak = 0;
    let cached = 0;
    for (const pool of this.pools.values()) {
      live += pool.liveBytes;
      peak += pool.peakBytes;
      cached += pool.cachedBytes;
    }
    return {
      parameterShards,
      masterWeights,
      optimizerStates,
      gradientAccumulators,
      modelStates: parameterShards + masterWeights + optimizerStates + gradientAccumulators,
      unitBuffersLive: live,
      unitBuffersPeak: peak,
      unitBuffersCached: cached,
      largestUnit: Math.max(...this.layout.units.map((u) => u.paddedNumel)) * elementBytes(this.gatherDtype),
    };
  }

  // ---------------------------------------------------------------- state for checkpoints

  /**
   * @internal A host copy of this rank's model states and the engine's counters, for
   * checkpoints (lib/engine/checkpoint*.ts). Call between steps (no micro-step open).
   */
  async exportState(): Promise<EngineState> {
    this.ensureUsable('exportState');
    if (this.micro !== 0 || this.layout.units.some((u) => this.state[u.index].gradReceived)) {
      throw invalidArgument(`save: an accumulation window is open (micro-step ${this.micro}): save between optimizer steps`);
    }
    await this.settlePending();
    const copy = async (b: Buf | undefined): Promise<Float32Array | undefined> => {
      if (b === undefined) return undefined;
      if (this.backend.kind !== 'host') return this.backend.read(b);
      // In pieces, yielding between them: a large shard space is copied without holding
      // the event loop for seconds (an optimizer step waits for the copy to finish).
      const source = b as Float32Array;
      const out = new Float32Array(source.length);
      for (let i = 0; i < source.length; i += SNAPSHOT_PIECE) {
        out.set(source.subarray(i, i + SNAPSHOT_PIECE), i);
        if (i + SNAPSHOT_PIECE < source.length) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return out;
    };
    const taking = (async (): Promise<EngineState> => ({
      step: this.steps,
      lossScaler: this.scaler?.save(),
      tensors: {
        master: (await copy(this.master)) as Float32Array,
        expAvg: await copy(this.expAvg),
        expAvgSq: await copy(this.expAvgSq),
        momentum: await copy(this.momentum),
      },
    }))();
    this.snapshotting = taking.catch(() => undefined);
    try {
      return await taking;
    } finally {
      this.snapshotting = undefined;
    }
  }

  /**
   * @internal Replaces this rank's model states and counters (checkpoint load):
   * `tensors` hold this rank's shard space in the current layout. Collective only in
   * that the caller loads every rank; ends any open window and drops gathered units.
   */
  async importState(state: EngineState): Promise<void> {
    this.ensureUsable('importState');
    await this.settlePending();
    const n = this.layout.shardNumel;
    const put = (target: Buf | undefined, values: Float32Array | undefined, name: string): void => {
      if (target === undefined) return;
      if (values === undefined || values.length !== n) {
        throw invalidArgument(`load: ${name} holds ${values?.length ?? 'no'} values, this rank's shard needs ${n}`);
      }
      this.backend.write(target, values);
    };
    put(this.master, state.tensors.master, 'the master weights');
    put(this.expAvg, state.tensors.expAvg, "AdamW's exp_avg");
    put(this.expAvgSq, state.tensors.expAvgSq, "AdamW's exp_avg_sq");
    put(this.momentum, state.tensors.momentum, "SGD's momentum buffer");
    if (this.master !== this.params) await this.backend.cast(this.params, this.gatherDtype, this.master, 'f32');
    this.steps = state.step;
    if (this.scaler && state.lossScaler) this.scaler.load(state.lossScaler);
    this.micro = 0;
    for (const u of this.layout.units) {
      const s = this.state[u.index];
      s.held = false;
      s.gradReceived = false;
      s.gatheredThisMicroStep = false;
      s.gatheredAtStep = -1;
      if (s.gradBuffer !== undefined) this.pool(this.reduceDtype).give(s.gradBuffer);
      s.gradBuffer = undefined;
      this.dropGathered(u);
    }
    this.lastGathered = undefined;
    this.direction = 1;
  }

  /**
   * Saves a checkpoint into `dir/<tag>` (default tag `step-<8-digit step>`) and points
   * `dir/latest` at it, atomically (docs/engine.md, "Checkpoints"); resolves on every
   * rank once committed. Collective over the world; call between optimizer steps.
   */
  save(dir: string, options?: SaveOptions): Promise<SaveResult> {
    return saveCheckpoint(this, dir, options);
  }

  /**
   * Like save(), but resolves as soon as this rank's state is copied, so training can
   * go on while the files are written; `done` settles at the commit.
   */
  beginSave(dir: string, options?: SaveOptions): Promise<PendingSave> {
    return beginSave(this, dir, options);
  }

  /**
   * Loads a checkpoint saved at any world and partition size into this engine's
   * layout (default: the one `dir/latest` names). Collective over the world.
   */
  load(dir: string, options?: LoadOptions): Promise<LoadResult> {
    return loadCheckpoint(this, dir, options);
  }

  /** Writes the consolidated fp32 weights as Hugging Face safetensors into `dir`. Collective over the world. */
  exportWeights(dir: string, options?: ExportOptions): Promise<ExportResult> {
    return exportWeights(this, dir, options);
  }

  /** Replaces the weights with those of a safetensors model (names and shapes checked). Collective over the world. */
  importWeights(location: string): Promise<ImportResult> {
    return importWeights(this, location);
  }

  /**
   * Drops the engine's buffers, and the groups it made when created from the world
   * (groups passed to createEngine stay: they are the caller's). Later calls reject
   * with MICS_ABORTED.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const pool of this.pools.values()) pool.clear();
    if (this.ownsGroups) destroyGroups(this.groups);
  }

  // ---------------------------------------------------------------- failures

  /**
   * Any failure of a collective or kernel aborts every communicator of the engine:
   * ranks waiting on this one (in any group) then fail at once, naming it and the
   * cause, instead of at their timeout.
   */
  private fail(err: unknown): MicsError {
    const error = toMicsError(err);
    if (this.failure === undefined) {
      this.failure = error;
      const reason = `engine on world rank ${this.groups.world.rank} failed: ${error.message}`;
      for (const comm of this.communicators()) {
        try {
          comm.abort(reason);
        } catch {
          // already destroyed: nothing to tell
        }
      }
    }
    return error;
  }

  private communicators(): Communicator[] {
    const g = this.groups;
    return [g.partition, g.replication, g.intraNode, g.interNode, g.world].filter((c): c is Communicator => c !== undefined);
  }

  private guard<R>(promise: Promise<R>): Promise<R> {
    return promise.catch((err: unknown) => {
      throw this.fail(err);
    });
  }

  /**
   * Issues a collective after every collective asked for before it has been issued
   * (see the module notes): `prepare` (local work, e.g. a cast) runs first, then
   * `launch` starts the collective. Resolves when the collective completes; the next
   * collective may be issued as soon as this one has started. With no `prepare` and
   * nothing waiting in the chain, it starts at once (the order is the same).
   */
  private issue(launch: () => Promise<void>, prepare?: Promise<void>): Promise<void> {
    if (prepare === undefined && this.waitingToIssue === 0) {
      // Nothing waits ahead of it (the common case): start it now, without the chain's promises.
      try {
        this.ensureUsable('collective');
        return launch();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.waitingToIssue += 1;
    const begun = this.issued
      .then(() => prepare)
      .then(() => {
        // Queued before the engine failed: fail at once instead of starting a collective the peers will not join.
        this.ensureUsable('collective');
        return { op: launch() };
      });
    const settled = (): void => {
      this.waitingToIssue -= 1;
    };
    this.issued = begun.then(settled, settled);
    return begun.then((b) => b.op);
  }

  /** Runs `promise` as a pending engine op: failures abort the engine; step() waits for it. */
  private track(promise: Promise<void>): Promise<void> {
    // guard()'s failure path and the bookkeeping in one then(): this runs for every collective.
    const guarded: Promise<void> = promise.then(
      () => {
        this.pending.delete(guarded);
      },
      (err: unknown) => {
        this.pending.delete(guarded);
        throw this.fail(err);
      },
    );
    this.pending.add(guarded);
    return guarded;
  }

  private async settlePending(): Promise<void> {
    while (this.pending.size > 0) {
      const results = await Promise.allSettled([...this.pending]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw this.fail(failed.reason);
    }
  }

  private ensureUsable(what: string): void {
    if (this.destroyed) throw new MicsError(`${what}: the engine was destroyed`, 'MICS_ABORTED', { rank: this.groups.world.rank, op: what });
    if (this.failure !== undefined) {
      const f = this.failure;
      throw new MicsError(`${what}: the engine failed earlier: ${f.message}`, 'MICS_ABORTED', {
        rank: this.groups.world.rank,
        group: f.group,
        op: what,
        peer: f.peer,
        worldPeer: f.worldPeer,
        cause: f,
      });
    }
  }

  // ---------------------------------------------------------------- helpers

  private pool(dtype: DType): BufferPool<Buf> {
    let pool = this.pools.get(dtype);
    if (pool === undefined) {
      pool = new BufferPool<Buf>(
        (length) => this.backend.alloc(dtype, length),
        elementBytes(dtype),
        (b) => this.backend.length(b),
      );
      this.pools.set(dtype, pool);
    }
    return pool;
  }

  private resolveUnit(unit: number | string | UnitLayout, what: string): UnitLayout {
    const units = this.layout.units;
    if (typeof unit === 'number') {
      if (Number.isInteger(unit) && unit >= 0 && unit < units.length) return units[unit];
    } else if (typeof unit === 'string') {
      const found = units.find((u) => u.name === unit);
      if (found) return found;
    } else if (typeof unit === 'object' && unit !== null && units[unit.index] === unit) {
      return unit;
    }
    throw invalidArgument(
      `${what}: unit ${typeof unit === 'object' && unit !== null ? describeValue((unit as { name?: unknown }).name) : describeValue(unit)} is not valid: ` +
        `use an index in [0, ${units.length - 1}], a unit name (${units.map((u) => u.name).join(', ')}) or an entry of engine.units`,
    );
  }

  private unitList(units: UnitLayout[]): string {
    return units.map((u) => `'${u.name}'`).join(', ');
  }

  /** See {@link ownBuffers}. */
  [ownBuffers](): EngineOwnBuffers<Buf> {
    this.ensureUsable('ownBuffers');
    return {
      params: this.params,
      master: this.master,
      accumulator: this.accumulator,
      expAvg: this.expAvg,
      expAvgSq: this.expAvgSq,
      normScratch: this.normScratch,
      pooled: (dtype, length, count) => {
        const pool = this.pool(dtype);
        const taken = Array.from({ length: count }, () => pool.take(length));
        // Given back in reverse, so that the pool hands them out in the order it had them.
        for (let i = taken.length - 1; i >= 0; i--) pool.give(taken[i]);
        return taken;
      },
    };
  }

  private shardOf(buffer: Buf, u: UnitLayout): Buf {
    return this.backend.view(buffer, u.shardOffset, u.shardNumel);
  }

  /** Contiguous runs of the shard space with one parameter group (padding joins its neighbour). */
  private optimizerRuns(groupOf: Map<string, number>): OptimizerRun[] {
    const runs: OptimizerRun[] = [];
    for (const u of this.layout.units) {
      for (const s of unitSegments(u, this.groups.partition.rank)) {
        const group = this.paramGroups[s.parameter ? (groupOf.get(s.parameter.name) ?? 0) : (runs[runs.length - 1]?.group.index ?? 0)];
        const last = runs[runs.length - 1];
        if (last && last.group === group && last.offset + last.length === s.offset) last.length += s.length;
        else runs.push({ offset: s.offset, length: s.length, group });
      }
    }
    return runs;
  }
}

function sliceOf(values: ArrayLike<number>, from: number, length: number): ArrayLike<number> {
  if (ArrayBuffer.isView(values)) return (values as unknown as Float32Array).subarray(from, from + length);
  return Array.prototype.slice.call(values, from, from + length) as number[];
}

/**
 * `ranks` grouped by the value each holds, as messages list them ("[0, 2] vs [1]"),
 * or undefined when they all hold the same.
 */
function differingRanks<V>(values: readonly V[], ranks: Iterable<number>): string | undefined {
  const byValue = ranksByValue(values, ranks);
  return byValue.size > 1 ? [...byValue.values()].map((group) => `[${group.join(', ')}]`).join(' vs ') : undefined;
}

function writeBig(buffer: Buf, value: bigint): void {
  if (buffer instanceof BigInt64Array) buffer[0] = value;
  else (buffer as DeviceTensor<'i64'>).upload(BigInt64Array.of(value));
}

function readBig(buffer: Buf): bigint[] {
  return Array.from(buffer instanceof BigInt64Array ? buffer : (buffer as DeviceTensor<'i64'>).download());
}
