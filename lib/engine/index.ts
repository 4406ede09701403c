/** The MiCS training engine (see engine.ts). */
export { createEngine, step, Engine } from './engine';
export { averageOverWorld, type AverageOptions } from './metrics';
export { DistributedSampler, type DistributedSamplerOptions } from './sampler';
export type {
  EngineOptions,
  EngineInit,
  EngineTensor,
  EngineMemory,
  GatheredUnit,
  GradientBuffer,
  StepResult,
  Precision,
} from './types';
export type { FloatDType } from './backend';
export type { ParameterSpec, ParameterInit, ParameterSlot, UnitLayout, UnitOptions, ModelLayout, ShardSegment } from './layout';
export type { OptimizerSpec, AdamWSpec, SgdSpec, ParamGroupSpec } from './optimizer';
export type { ScheduleSpec, ScheduleFunction } from './schedule';
export type { LossScalingOptions, LossScalerState } from './loss-scaler';
export type { StepStats, GroupBytes, TraceEvent } from './stats';
export {
  beginSave,
  saveCheckpoint,
  loadCheckpoint,
  exportCheckpoint,
  exportWeights,
  importWeights,
  readWeights,
  Checkpoint,
  WeightsSource,
  SafetensorsFile,
  SafetensorsWriter,
  writeSafetensors,
  CHECKPOINT_FORMAT_VERSION,
  type SaveOptions,
  type SaveResult,
  type PendingSave,
  type LoadOptions,
  type LoadResult,
  type ExportOptions,
  type ExportResult,
  type ExportDType,
  type ImportResult,
  type VerifyReport,
  type CheckpointIndex,
  type SavedLayout,
  type SavedParameter,
  type SavedPiece,
  type SavedFile,
  type StateName,
  type JsonValue,
  type SafetensorsDType,
  type SafetensorsTensor,
  type SafetensorsTensorSpec,
  type SafetensorsHeader,
} from './checkpoint';
