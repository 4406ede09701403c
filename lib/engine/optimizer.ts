/**
 * Optimizers on shards, with PyTorch's names, defaults and formulas
 * (torch.optim.AdamW, torch.optim.SGD), and parameter groups: per-group learning
 * rate and weight decay (e.g. no decay on biases and norms).
 */
import { booleanOption, invalidArgument, valueText } from '../core/errors';
import type { ParameterSlot } from './layout';

/** torch.optim.AdamW (amsgrad and maximize off). */
export interface AdamWSpec {
  type: 'adamw';
  /** Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, default 1e-2. */
  weightDecay?: number;
}

/** torch.optim.SGD (maximize off). */
export interface SgdSpec {
  type: 'sgd';
  /** Default 1e-3. */
  lr?: number;
  /** Default 0. */
  momentum?: number;
  /** Default 0. */
  dampening?: number;
  /** L2 weight decay added to the gradient, default 0. */
  weightDecay?: number;
  /** Default false (needs momentum > 0 and dampening 0). */
  nesterov?: boolean;
}

/** The optimizer of an engine. */
export type OptimizerSpec = AdamWSpec | SgdSpec;

/** Overrides for the parameters a group selects; the first group that matches wins. */
export interface ParamGroupSpec {
  /** Which parameters: a list of names, a regular expression on the name, or a predicate. */
  params: readonly string[] | RegExp | ((name: string) => boolean);
  lr?: number;
  weightDecay?: number;
}

/** A resolved group: the hyper-parameters every member uses. */
export interface ResolvedGroup {
  readonly index: number;
  /** Base learning rate (before the schedule's factor). */
  readonly lr: number;
  readonly weightDecay: number;
}

/** The optimizer with its defaults filled in. */
export type ResolvedOptimizer =
  | { readonly type: 'adamw'; readonly lr: number; readonly beta1: number; readonly beta2: number; readonly eps: number; readonly weightDecay: number }
  | {
      readonly type: 'sgd';
      readonly lr: number;
      readonly momentum: number;
      readonly dampening: number;
      readonly weightDecay: number;
      readonly nesterov: boolean;
    };

function nonNegative(what: string, value: unknown, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw invalidArgument(`${what} ${valueText(value)} is not valid: use a finite number >= 0`);
  }
  return v;
}

function unitInterval(what: string, value: unknown, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw invalidArgument(`${what} ${valueText(value)} is not valid: use a number in [0, 1)`);
  return v;
}

/** Validates the optimizer and fills in PyTorch's defaults. */
export function resolveOptimizer(spec: OptimizerSpec | undefined): ResolvedOptimizer {
  if (spec === undefined || typeof spec !== 'object' || spec === null) {
    throw invalidArgument("optimizer is required: {type: 'adamw', lr, betas, eps, weightDecay} or {type: 'sgd', lr, momentum, ...}");
  }
  if (spec.type === 'adamw') {
    const betas = spec.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2) throw invalidArgument(`optimizer.betas ${valueText(betas)} is not valid: use [beta1, beta2]`);
    const eps = nonNegative('optimizer.eps', spec.eps, 1e-8);
    return {
      type: 'adamw',
      lr: nonNegative('optimizer.lr', spec.lr, 1e-3),
      beta1: unitInterval('optimizer.betas[0]', betas[0], 0.9),
      beta2: unitInterval('optimizer.betas[1]', betas[1], 0.999),
      eps,
      weightDecay: nonNegative('optimizer.weightDecay', spec.weightDecay, 1e-2),
    };
  }
  if (spec.type === 'sgd') {
    const momentum = nonNegative('optimizer.momentum', spec.momentum, 0);
    const dampening = nonNegative('optimizer.dampening', spec.dampening, 0);
    const nesterov = booleanOption('optimizer.nesterov', spec.nesterov, false);
    if (nesterov && (momentum <= 0 || dampening !== 0)) {
      throw invalidArgument(`optimizer.nesterov needs momentum > 0 and dampening 0 (got momentum ${momentum}, dampening ${dampening}), as in torch.optim.SGD`);
    }
    return {
      type: 'sgd',
      lr: nonNegative('optimizer.lr', spec.lr, 1e-3),
      momentum,
      dampening,
      weightDecay: nonNegative('optimizer.weightDecay', spec.weightDecay, 0),
      nesterov,
    };
  }
  throw invalidArgument(`optimizer.type '${valueText((spec as { type?: unknown }).type)}' is not valid: use 'adamw' or 'sgd'`);
}

/**
 * The group of every parameter: index 0 is the default group (the optimizer's own lr
 * and weight decay), group i+1 is `groups[i]`. The first matching group wins.
 */
export function resolveGroups(
  parameters: readonly ParameterSlot[],
  optimizer: ResolvedOptimizer,
  groups: readonly ParamGroupSpec[] = [],
): { groups: ResolvedGroup[]; groupOf: Map<string, number> } {
  if (!Array.isArray(groups)) throw invalidArgument('paramGroups must be an array of {params, lr?, weightDecay?}');
  const resolved: ResolvedGroup[] = [{ index: 0, lr: optimizer.lr, weightDecay: optimizer.weightDecay }];
  const names = new Set(parameters.map((p) => p.name));
  const matchers = groups.map((g, i) => {
    const what = `paramGroups[${i}]`;
    resolved.push({
      index: i + 1,
      lr: nonNegative(`${what}.lr`, g?.lr, optimizer.lr),
      weightDecay: nonNegative(`${what}.weightDecay`, g?.weightDecay, optimizer.weightDecay),
    });
    const sel = g?.params;
    if (Array.isArray(sel)) {
      for (const n of sel) if (!names.has(n)) throw invalidArgument(`${what}.params names '${valueText(n)}', which is not a parameter`);
      const set = new Set(sel);
      return (name: string) => set.has(name);
    }
    if (sel instanceof RegExp) return (name: string) => new RegExp(sel.source, sel.flags.replace('g', '')).test(name);
    if (typeof sel === 'function') return (name: string) => sel(name) === true;
    throw invalidArgument(`${what}.params is not valid: use a list of names, a RegExp or a function (name) => boolean`);
  });
  const groupOf = new Map<string, number>();
  for (const p of parameters) {
    const i = matchers.findIndex((m) => m(p.name));
    groupOf.set(p.name, i + 1);
  }
  return { groups: resolved, groupOf };
}
