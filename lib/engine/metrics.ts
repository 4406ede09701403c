/**
 * Metrics averaged over the world, for logging: every rank passes its own numbers
 * (e.g. its micro-batch's loss and accuracy), every rank gets the average over all
 * ranks. One small all-reduce (f64) on the engine's world communicator, issued
 * through the engine's chain of collectives (the same order on every rank, whatever
 * the timing of its own ops); a failure aborts the engine like a failure of its own.
 */
import { describeValue, invalidArgument, optionsObject, valueText } from '../core/errors';
import { allReduceHostValues } from './backend';
import type { Engine } from './engine';
import type { EngineTensor } from './types';

/** Options of {@link averageOverWorld}. */
export interface AverageOptions {
  /**
   * This rank's weight (e.g. the number of examples its values are averaged over);
   * the result is the weighted mean sum(w x v) / sum(w). Default 1 (the plain mean).
   */
  weight?: number;
}

/**
 * The average over every rank of the world of each value, by name. Collective over
 * the world: every rank calls it at the same point with the same names (in the same
 * order). For logging, not for training: the gradients are averaged by the engine.
 *
 * @example
 *   const { loss, accuracy } = await averageOverWorld(engine, { loss: myLoss, accuracy: myAccuracy });
 */
export async function averageOverWorld<K extends string>(
  engine: Engine<EngineTensor>,
  values: Readonly<Record<K, number>>,
  options: AverageOptions = {},
): Promise<Record<K, number>> {
  if (typeof engine !== 'object' || engine === null || typeof engine.runCollective !== 'function') {
    throw invalidArgument(`averageOverWorld: engine ${describeValue(engine)} is not valid: use the Engine of createEngine()`);
  }
  if (typeof values !== 'object' || values === null) throw invalidArgument('averageOverWorld(engine, values): values must be an object of numbers by name');
  const names = Object.keys(values) as K[];
  if (names.length === 0) throw invalidArgument('averageOverWorld(engine, values): values has no names');
  for (const name of names) {
    const v = values[name];
    if (typeof v !== 'number' || Number.isNaN(v)) throw invalidArgument(`averageOverWorld: value '${name}' is ${valueText(v)}: use a number`);
  }
  const weight = optionsObject('averageOverWorld', options, {}).weight ?? 1;
  if (typeof weight !== 'number' || !(weight >= 0) || !Number.isFinite(weight)) {
    throw invalidArgument(`averageOverWorld: weight ${valueText(weight)} is not valid: use a finite number >= 0`);
  }
  // [w x v_1, ..., w x v_n, w], summed over the world
  const sums = new Float64Array(names.length + 1);
  names.forEach((name, i) => (sums[i] = weight * values[name]));
  sums[names.length] = weight;
  await allReduceHostValues(engine.groups.world, sums, 'sum', (launch) => engine.runCollective(launch));
  const total = sums[names.length];
  if (total === 0) throw invalidArgument('averageOverWorld: the weights of all ranks add up to 0');
  const out = {} as Record<K, number>;
  names.forEach((name, i) => (out[name] = sums[i] / total));
  return out;
}
