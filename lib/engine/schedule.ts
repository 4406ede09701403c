/**
 * Learning-rate schedules, described as data so that a checkpoint can store them:
 * a linear warmup followed by a cosine, linear or constant decay. The schedule is a
 * factor applied to every parameter group's base learning rate (as PyTorch's
 * LambdaLR does), evaluated at the 1-based number of the optimizer step being taken.
 */
import { invalidArgument, valueText } from '../core/errors';

/** A schedule as data (what a checkpoint stores). */
export interface ScheduleSpec {
  /** Steps of linear warmup: step k (1-based) of the warmup uses k / warmupSteps. Default 0. */
  warmupSteps?: number;
  /** What follows the warmup. Default 'constant'. */
  decay?: 'constant' | 'cosine' | 'linear';
  /** The step at which the decay reaches `minFactor` (needed for cosine and linear). */
  totalSteps?: number;
  /** The factor at and after `totalSteps` (default 0). */
  minFactor?: number;
}

/** A user function from the 1-based step to the factor; only the step count is saved. */
export type ScheduleFunction = (step: number) => number;

/** A resolved schedule. */
export interface Schedule {
  /** The data, or undefined for a user function. */
  readonly spec: Readonly<Required<ScheduleSpec>> | undefined;
  /** The factor for 1-based step `step`. */
  factor(step: number): number;
}

/** Validates a schedule and returns its factor function. */
export function makeSchedule(schedule: ScheduleSpec | ScheduleFunction | undefined): Schedule {
  if (typeof schedule === 'function') {
    return {
      spec: undefined,
      factor(step: number): number {
        const f = schedule(step);
        if (typeof f !== 'number' || !Number.isFinite(f) || f < 0) {
          throw invalidArgument(`the schedule function returned ${valueText(f)} for step ${step}: return a finite number >= 0`);
        }
        return f;
      },
    };
  }
  const s = schedule ?? {};
  if (typeof s !== 'object' || s === null) throw invalidArgument(`schedule ${valueText(schedule)} is not valid: use {warmupSteps, decay, totalSteps, minFactor} or a function`);
  const warmupSteps = s.warmupSteps ?? 0;
  const decay = s.decay ?? 'constant';
  const minFactor = s.minFactor ?? 0;
  if (!Number.isSafeInteger(warmupSteps) || warmupSteps < 0) {
    throw invalidArgument(`schedule.warmupSteps ${valueText(warmupSteps)} is not valid: use an integer >= 0`);
  }
  if (!['constant', 'cosine', 'linear'].includes(decay)) {
    throw invalidArgument(`schedule.decay '${valueText(decay)}' is not valid: use 'constant', 'cosine' or 'linear'`);
  }
  if (!Number.isFinite(minFactor) || minFactor < 0 || minFactor > 1) {
    throw invalidArgument(`schedule.minFactor ${valueText(minFactor)} is not valid: use a number in [0, 1]`);
  }
  const totalSteps = s.totalSteps ?? 0;
  if (decay !== 'constant' && (!Number.isSafeInteger(totalSteps) || totalSteps <= warmupSteps)) {
    throw invalidArgument(
      `schedule.totalSteps ${valueText(s.totalSteps)} is not valid for '${decay}' decay: use an integer > warmupSteps (${warmupSteps})`,
    );
  }
  const spec = Object.freeze({ warmupSteps, decay, totalSteps, minFactor });
  return {
    spec,
    factor(step: number): number {
      if (step <= warmupSteps) return step / warmupSteps;
      if (decay === 'constant') return 1;
      const progress = Math.min(1, (step - warmupSteps) / (totalSteps - warmupSteps));
      const shape = decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
      return minFactor + (1 - minFactor) * shape;
    },
  };
}
