/**
 * The tfjs trainer: a tfjs model trained by the engine. It only translates between
 * tfjs and the engine: the engine's gathered parameters go into the model's
 * tf.Variables, tf.variableGrads computes the gradients of the caller's loss, and
 * the gradients go back to the engine, which reduces them in two hops and runs the
 * optimizer on this rank's shard at the accumulation boundary.
 *
 * tfjs keeps every variable's full value (its kernels need them), so with the
 * adapter a rank holds the full parameters once, in tfjs; the engine shards what
 * grows with the optimizer: the fp32 master weights, the optimizer states and the
 * gradient accumulators (16 bytes per parameter with AdamW, divided by S).
 */
import type * as tfjs from '@tensorflow/tfjs';
import { Communicator } from '../../comm/communicator';
import type { MicsGroups } from '../../comm/mics-groups';
import { describeValue, invalidArgument } from '../../core/errors';
import { createEngine, type Engine } from '../../engine/engine';
import type { EngineOptions, EngineTensor, StepResult } from '../../engine/types';
import { buildRegistry, type RegistryEntry, type TrainableModel, type UnitGrouping } from './registry';
import { tf } from './tfjs';
import { copyGradient, countEngineCopy, emptyCopyStatistics, readGradient, writeVariable, type CopyStatistics } from './transfer';

/** Options of {@link createTrainer}: the engine's options, less what the model gives. */
export interface TrainerOptions extends Omit<EngineOptions, 'parameters' | 'init'> {
  /**
   * Where the initial values come from: 'rank0' (default) broadcasts world rank 0's
   * variables to every rank (like DDP at construction: other ranks' initial values do
   * not matter); 'every-rank' takes each rank's own variables and checks that the
   * replicas agree (MICS_MISMATCH naming the ranks that differ, e.g. unseeded initializers).
   */
  init?: 'rank0' | 'every-rank';
  /** How variables are grouped into units. Default: 'layer' for a LayersModel, 'size' for a list of variables. */
  unitOf?: UnitGrouping;
}

/** What a loss function returns: the micro-batch's mean loss, optionally with scalar metrics to report. */
export type LossOutput = tfjs.Scalar | { loss: tfjs.Scalar; metrics?: Readonly<Record<string, tfjs.Scalar>> };

/** What applyGradients() resolves to: the engine's step result and the copies of this micro-step. */
export interface ApplyResult extends StepResult {
  /** Milliseconds copying between tfjs and the engine in this micro-step (both directions). */
  copyMs: number;
  /** Bytes copied between tfjs and the engine in this micro-step (both directions). */
  copiedBytes: number;
}

/** What trainStep() resolves to. */
export interface TrainStepResult extends ApplyResult {
  /** This rank's loss for its micro-batch (divided back by the loss scale in fp16). */
  loss: number;
  /** The metrics the loss function returned, as numbers (this rank's micro-batch). */
  metrics: Record<string, number>;
  /** Milliseconds in tfjs: the loss function forward and tf.variableGrads' backward. */
  computeMs: number;
}

const totalBytes = (c: CopyStatistics): number => c.parametersIn.bytes + c.gradientsOut.bytes;
const totalMs = (c: CopyStatistics): number => c.parametersIn.ms + c.gradientsOut.ms;

/**
 * Creates the engine for a tfjs model: one parameter per trainable variable (named
 * by the variable), units by layer. Collective over the world: every rank calls it
 * with the same model architecture and options. Given the world communicator, the
 * engine makes its groups (`options.partitionSize`, default 'auto': see createEngine).
 *
 * @example
 *   const trainer = await createTrainer(groups, model, { optimizer: { type: 'adamw', lr: 1e-3 } });
 *   const { loss } = await trainer.trainStep(() => tf.losses.softmaxCrossEntropy(ys, model.apply(xs)));
 */
export async function createTrainer(groups: MicsGroups | Communicator, model: TrainableModel, options: TrainerOptions): Promise<TfjsTrainer> {
  const world = groups instanceof Communicator ? groups : groups?.world;
  if (!world) {
    throw invalidArgument('createTrainer(groups, model, options): groups must be the result of createGroups(world, ...), or the world communicator');
  }
  if (!options || typeof options !== 'object') throw invalidArgument('createTrainer(groups, model, options): options (at least {optimizer}) are required');
  if ('parameters' in options) throw invalidArgument('createTrainer: the parameters come from the model: leave options.parameters out');
  const { init = 'rank0', unitOf, ...engineOptions } = options;
  if (init !== 'rank0' && init !== 'every-rank') {
    throw invalidArgument(`createTrainer: init ${describeValue(init)} is not valid: use 'rank0' (rank 0's variables, broadcast) or 'every-rank'`);
  }
  const { entries, parameters } = buildRegistry(model, unitOf);
  const readsOwn = init === 'every-rank' || world.rank === 0;
  const weights: Record<string, Float32Array> = {};
  if (readsOwn) for (const e of entries) weights[e.name] = e.variable.dataSync() as Float32Array;
  const engine = await createEngine<EngineTensor>(groups, { ...engineOptions, parameters, init: { weights, from: init === 'rank0' ? 'rank0' : 'every-rank' } });
  // The variables that were read already hold the engine's values (in fp32; half precision rounds them).
  return new TfjsTrainer(engine, entries, readsOwn && engine.gatherDtype === 'f32');
}

/** A tfjs model trained by the engine. Create it with {@link createTrainer}. */
export class TfjsTrainer {
  /** The engine under the trainer (statistics(), memory(), layout, ...). */
  readonly engine: Engine<EngineTensor>;
  /** The variables trained, in registry order: what `tf.variableGrads(f, trainer.variables)` takes. */
  readonly variables: readonly tfjs.Variable[];
  private readonly entries: ReadonlyMap<string, RegistryEntry>;
  /** engine.stepCount when the variables were last written from the engine (-1: never). */
  private writtenStep: number;
  /** engine.stepCount when this trainer last gathered every unit into the variables (-1: never). */
  private gatheredStep = -1;
  /** gather() ran in the current micro-step. */
  private gathered = false;
  /** A call that issues collectives is running (they must not interleave). */
  private busy: string | undefined;
  private readonly copies = emptyCopyStatistics();

  /** @internal Use createTrainer(). */
  constructor(engine: Engine<EngineTensor>, entries: readonly RegistryEntry[], variablesCurrent: boolean) {
    this.engine = engine;
    this.variables = entries.map((e) => e.variable);
    this.entries = new Map(entries.map((e) => [e.name, e]));
    this.writtenStep = variablesCurrent ? engine.stepCount : -1;
  }

  /** Multiply your loss by this before tf.variableGrads when you use applyGradients() in fp16 (trainStep does it). */
  get lossScale(): number {
    return this.engine.lossScale;
  }

  /** The copies between tfjs and the engine since the trainer was created (bytes, count, time per direction). */
  copyStatistics(): CopyStatistics {
    return { parametersIn: { ...this.copies.parametersIn }, gradientsOut: { ...this.copies.gradientsOut } };
  }

  /**
   * Puts the current parameters into the variables: in the first micro-step after an
   * optimizer step, all-gathers every unit (the next one prefetched) and writes each
   * variable; in the later micro-steps of the window the variables already hold them
   * and nothing is gathered. Call it at the start of every micro-step before
   * computing with the model (trainStep does). Collective over the partition group.
   */
  gather(): Promise<void> {
    return this.exclusive('gather', () => this.gatherInto(false));
  }

  /**
   * Writes the current parameters into the variables whether or not they look
   * current (for evaluation after the last step, or after engine.load()).
   * Collective over the partition group.
   */
  syncVariables(): Promise<void> {
    return this.exclusive('syncVariables', () => this.gatherInto(true));
  }

  private checkIdle(what: string): void {
    if (this.busy !== undefined) {
      throw invalidArgument(`${what}: ${this.busy}() has not finished: await it before the next call of the trainer`);
    }
  }

  /**
   * Runs one call that issues collectives; a second one while it runs rejects (its
   * collectives would interleave with the first's differently on different ranks).
   */
  private async exclusive<R>(what: string, run: () => Promise<R>): Promise<R> {
    this.checkIdle(what);
    this.busy = what;
    try {
      return await run();
    } finally {
      this.busy = undefined;
    }
  }

  private async gatherInto(force: boolean): Promise<void> {
    // Later micro-steps of a window: the variables hold the parameters this trainer
    // gathered in its first one, and no optimizer step or load changed them since (the
    // engine's answer): no all-gather. Both are alike on every rank (they made the same
    // calls), so every rank skips or none does.
    if (!force && this.gatheredStep === this.engine.stepCount && this.engine.units.every((unit) => this.engine.reuseGathered(unit))) {
      this.gathered = true;
      return;
    }
    const stale = force || this.writtenStep !== this.engine.stepCount;
    for (const unit of this.engine.units) {
      const { params } = await this.engine.gather(unit);
      try {
        if (stale) {
          for (const p of unit.parameters) {
            writeVariable((this.entries.get(p.name) as RegistryEntry).variable, params[p.name], this.engine.gatherDtype, this.copies.parametersIn);
          }
        }
      } finally {
        this.engine.release(unit);
      }
    }
    if (stale) this.writtenStep = this.engine.stepCount;
    this.gatheredStep = this.engine.stepCount;
    this.gathered = true;
  }

  /**
   * Hands this micro-step's gradients to the engine and ends the micro-step (the
   * optimizer runs at the accumulation boundary): `optimizer.applyGradients(grads)`
   * of tfjs, for gradients by variable name from `tf.variableGrads(f, trainer.variables)`.
   * Give the gradients of your micro-batch's MEAN loss (times `lossScale` in fp16); a
   * variable without a gradient counts as zero. The gradients are read before this
   * returns its Promise: you may dispose them at once. Call gather() first in every
   * micro-step. Collective over the world.
   */
  applyGradients(grads: Readonly<Record<string, tfjs.Tensor | null | undefined>>): Promise<ApplyResult> {
    const before = { bytes: totalBytes(this.copies), ms: totalMs(this.copies) };
    let reductions: Promise<void>[];
    try {
      this.checkIdle('applyGradients');
      reductions = this.handOver(grads); // reads the gradients now, before the Promise is returned
    } catch (err) {
      return Promise.reject(err);
    }
    return this.exclusive('applyGradients', () => this.endMicroStep(reductions, before));
  }

  /**
   * One micro-step at tfjs's level: gather() the parameters into the variables, run
   * `lossFn` under `tf.variableGrads` (in a tf.tidy: tensors it creates are freed),
   * hand the gradients to the engine and step() — the optimizer runs at the
   * accumulation boundary. `lossFn` returns the micro-batch's MEAN loss as a scalar,
   * or `{loss, metrics}` with scalar metrics (e.g. accuracy) that come back as numbers.
   * Collective over the world.
   */
  trainStep(lossFn: () => LossOutput): Promise<TrainStepResult> {
    return this.exclusive('trainStep', () => this.microStep(lossFn));
  }

  private async microStep(lossFn: () => LossOutput): Promise<TrainStepResult> {
    if (typeof lossFn !== 'function') throw invalidArgument('trainStep(lossFn): lossFn must be a function returning the mean loss as a scalar tf.Tensor');
    const before = { bytes: totalBytes(this.copies), ms: totalMs(this.copies) };
    await this.gatherInto(false);
    const scale = this.engine.lossScale;
    let loss = NaN;
    let computeMs = 0;
    const metrics: Record<string, number> = {};
    let reductions: Promise<void>[] = [];
    const kept: tfjs.Tensor[] = [];
    const metricNames: string[] = [];
    try {
      tf.tidy(() => {
        const started = performance.now();
        const { value, grads } = tf.variableGrads(() => {
          const out = lossFn();
          const lossTensor = out instanceof tf.Tensor ? out : (out as { loss?: unknown } | undefined)?.loss;
          if (!(lossTensor instanceof tf.Tensor) || lossTensor.rank !== 0) {
            throw invalidArgument('trainStep(lossFn): lossFn must return a scalar tf.Tensor (the mean loss of the micro-batch) or {loss, metrics}');
          }
          if (!(out instanceof tf.Tensor) && out.metrics !== undefined) {
            for (const [name, t] of Object.entries(out.metrics)) {
              if (!(t instanceof tf.Tensor) || t.size !== 1) throw invalidArgument(`trainStep(lossFn): metric '${name}' must be a scalar tf.Tensor`);
              // the forward pass runs in its own tidy: keep the metrics to read them after it
              kept.push(tf.keep(t));
              metricNames.push(name);
            }
          }
          return (scale === 1 ? lossTensor : tf.mul(lossTensor, scale)) as tfjs.Scalar;
        }, this.variables as tfjs.Variable[]);
        loss = value.dataSync()[0] / scale;
        metricNames.forEach((name, i) => (metrics[name] = kept[i].dataSync()[0]));
        computeMs = performance.now() - started;
        reductions = this.handOver(grads);
      });
    } finally {
      tf.dispose(kept);
    }
    const result = await this.endMicroStep(reductions, before);
    return { ...result, loss, metrics, computeMs };
  }

  /** Drops the engine's buffers, and its groups when it made them (the model, and groups you passed, stay yours). */
  destroy(): void {
    this.engine.destroy();
  }

  /** Checks the gradients, copies them into the engine unit by unit (last unit first, as backward runs) and starts the reductions. */
  private handOver(grads: Readonly<Record<string, tfjs.Tensor | null | undefined>>): Promise<void>[] {
    if (!this.gathered) {
      throw invalidArgument('applyGradients: call trainer.gather() first in every micro-step (it puts the current parameters into the variables)');
    }
    if (typeof grads !== 'object' || grads === null) throw invalidArgument('applyGradients(grads): grads must be an object of tf.Tensors by variable name');
    for (const [name, g] of Object.entries(grads)) {
      const entry = this.entries.get(name);
      if (entry === undefined) {
        throw invalidArgument(`applyGradients: '${name}' is not a trained variable (trained: ${[...this.entries.keys()].join(', ')})`);
      }
      if (g === null || g === undefined) continue;
      if (!(g instanceof tf.Tensor)) throw invalidArgument(`applyGradients: the gradient of '${name}' is not a tf.Tensor`);
      if (g.isDisposed) throw invalidArgument(`applyGradients: the gradient of '${name}' was disposed: dispose gradients after applyGradients() returns`);
      if (g.dtype !== 'float32' || g.size !== entry.numel || g.shape.join(',') !== entry.shape.join(',')) {
        throw invalidArgument(`applyGradients: the gradient of '${name}' is ${g.dtype} [${g.shape.join(', ')}]; the variable is float32 [${entry.shape.join(', ')}]`);
      }
    }
    const out = this.copies.gradientsOut;
    // The engine's own f32 host buffer takes the copy directly; half precision and
    // device buffers go by name (the engine casts or uploads).
    const intoBuffer = this.engine.groups.partition.backend !== 'nccl' && this.engine.reduceDtype === 'f32';
    const reductions: Promise<void>[] = [];
    for (const unit of [...this.engine.units].reverse()) {
      if (intoBuffer) {
        const { grads: buffer } = this.engine.gradientBuffer(unit); // zero-filled: a variable without a gradient counts as zero
        for (const p of unit.parameters) {
          const g = grads[p.name];
          if (g) copyGradient(buffer[p.name] as Float32Array, readGradient(g, out), out);
        }
        reductions.push(this.engine.reduceGradients(unit));
      } else {
        const byName: Record<string, Float32Array> = {};
        for (const p of unit.parameters) {
          const g = grads[p.name];
          byName[p.name] = g ? readGradient(g, out) : new Float32Array(p.numel);
          countEngineCopy(byName[p.name], out);
        }
        reductions.push(this.engine.reduceGradients(unit, byName));
      }
    }
    this.gathered = false;
    return reductions;
  }

  private async endMicroStep(reductions: Promise<void>[], before: { bytes: number; ms: number }): Promise<ApplyResult> {
    const settled = await Promise.allSettled(reductions);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const result = await this.engine.step();
    return { ...result, copyMs: totalMs(this.copies) - before.ms, copiedBytes: totalBytes(this.copies) - before.bytes };
  }
}
