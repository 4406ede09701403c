/**
 * mics/tfjs: train TensorFlow.js models with the MiCS engine.
 *
 * Requiring this module loads `@tensorflow/tfjs` (an optional peer dependency of
 * mics) and fails at once, saying what to install, when it is missing.
 *
 * @packageDocumentation
 */
import { tf } from './tfjs';

export { createTrainer, TfjsTrainer, type TrainerOptions, type LossOutput, type ApplyResult, type TrainStepResult } from './trainer';
export type { TrainableModel, UnitGrouping, LayerVariableLike } from './registry';
export type { CopyStatistics, CopyCounters } from './transfer';
export type { Tfjs } from './tfjs';

/** The TensorFlow.js module the adapter uses (the same `tf` as `require('@tensorflow/tfjs')`). */
export { tf };
