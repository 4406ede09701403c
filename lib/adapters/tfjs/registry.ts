/**
 * The engine's parameter registry from a tfjs model: one parameter per trainable
 * variable (named by the variable, so gradients from tf.variableGrads map by name),
 * grouped into units by layer, by variable, by size, or by a function of the name.
 */
import type * as tfjs from '@tensorflow/tfjs';
import { describeValue, invalidArgument, valueText } from '../../core/errors';
import type { ParameterSpec } from '../../engine/layout';
import { tf } from './tfjs';

/** A variable of a LayersModel (`model.trainableWeights[i]`): `read()` returns its tf.Variable. */
export interface LayerVariableLike {
  readonly name: string;
  read(): tfjs.Tensor;
}

/** What the adapter trains: a LayersModel, or a list of tf.Variables (or LayerVariables). */
export type TrainableModel = tfjs.LayersModel | readonly (tfjs.Variable | LayerVariableLike)[];

/**
 * How variables are grouped into units (the engine's gather/release granularity):
 * 'layer' (one unit per layer; a LayersModel only; the default for one), 'variable'
 * (one unit per variable), 'size' (consecutive variables bucketed by the engine's
 * `units.maxElements`; the default for a list of variables), or a function from a
 * variable's name to its unit's name (variables of one unit must be consecutive).
 */
export type UnitGrouping = 'layer' | 'variable' | 'size' | ((variableName: string) => string);

/** One trained variable and its place in the registry. */
export interface RegistryEntry {
  readonly variable: tfjs.Variable;
  /** The variable's name: the parameter's name in the engine. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
}

function isLayersModel(model: unknown): model is tfjs.LayersModel {
  return typeof model === 'object' && model !== null && Array.isArray((model as { layers?: unknown }).layers) && 'trainableWeights' in model;
}

function toVariable(value: unknown, where: string): tfjs.Variable {
  const candidate = typeof value === 'object' && value !== null && typeof (value as LayerVariableLike).read === 'function' && !(value instanceof tf.Tensor) ? (value as LayerVariableLike).read() : value;
  if (!(candidate instanceof tf.Variable)) {
    throw invalidArgument(
      `${where} is not a tf.Variable (nor a LayerVariable of a model): pass a tf.LayersModel or a list of the tf.Variables to train ` +
        '(of the same @tensorflow/tfjs that mics/tfjs loads)',
    );
  }
  return candidate;
}

/** The variables to train and their units, in registry (= forward) order. */
export function buildRegistry(model: TrainableModel, grouping: UnitGrouping | undefined): { entries: RegistryEntry[]; parameters: ParameterSpec[] } {
  const found: { variable: tfjs.Variable; layer?: string }[] = [];
  if (isLayersModel(model)) {
    // per layer, so that each variable knows its layer; shared variables count once
    for (const layer of model.layers) {
      for (const w of layer.trainableWeights) found.push({ variable: toVariable(w, `weight '${w.name}' of layer '${layer.name}'`), layer: layer.name });
    }
  } else if (Array.isArray(model)) {
    model.forEach((v, i) => found.push({ variable: toVariable(v, `variables[${i}]`) }));
  } else {
    throw invalidArgument('createTrainer(groups, model, options): model must be a tf.LayersModel or an array of tf.Variables');
  }
  const seen = new Set<tfjs.Variable>();
  const unique = found.filter(({ variable }) => {
    if (seen.has(variable)) return false;
    seen.add(variable);
    return true;
  });
  if (unique.length === 0) throw invalidArgument('createTrainer: the model has no trainable variables');

  const mode = grouping ?? (isLayersModel(model) ? 'layer' : 'size');
  if (mode === 'layer' && !isLayersModel(model)) throw invalidArgument("unitOf 'layer' needs a tf.LayersModel: a list of variables has no layers (use 'variable', 'size' or a function)");
  if (typeof mode !== 'function' && !['layer', 'variable', 'size'].includes(mode)) {
    throw invalidArgument(`unitOf '${valueText(mode)}' is not valid: use 'layer', 'variable', 'size' or a function (variableName) => unitName`);
  }
  const names = new Set<string>();
  const entries: RegistryEntry[] = [];
  const parameters: ParameterSpec[] = [];
  for (const { variable, layer } of unique) {
    const name = variable.name;
    if (names.has(name)) throw invalidArgument(`two trainable variables are named '${name}': the engine needs unique names`);
    names.add(name);
    if (!variable.trainable) throw invalidArgument(`variable '${name}' is not trainable: leave it out of the list`);
    if (variable.dtype !== 'float32') throw invalidArgument(`variable '${name}' has dtype ${variable.dtype}: the adapter trains float32 variables only`);
    const shape = [...variable.shape];
    let unit: string | undefined;
    if (mode === 'layer') unit = layer;
    else if (mode === 'variable') unit = name;
    else if (typeof mode === 'function') {
      unit = mode(name);
      if (typeof unit !== 'string' || unit === '') throw invalidArgument(`unitOf('${name}') returned ${describeValue(unit)}: return a unit name (a non-empty string)`);
    }
    entries.push({ variable, name, shape, numel: shape.reduce((a, b) => a * b, 1) });
    parameters.push(unit === undefined ? { name, shape } : { name, shape, unit });
  }
  return { entries, parameters };
}
