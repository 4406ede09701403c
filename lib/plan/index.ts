/**
 * lib/plan: the planner and cost model behind `mics plan` and `mics simulate`.
 * Pure TypeScript (no addon, no I/O): cluster and model presets, the memory
 * model, the alpha-beta collective model, the engine's step schedule, the
 * planner, the published-figure validation, the emulated-cluster calibration and
 * an SVG chart writer. Method and limits: docs/scaling.md.
 *
 * @packageDocumentation
 */
export { PLAN_LIMITS } from './limits';
export {
  CLUSTER_PRESETS,
  clusterPreset,
  clusterFromJson,
  checkCluster,
  defaultEmulatedPreset,
  linkBandwidth,
  type ClusterPreset,
  type DeviceSpec,
  type LinkClass,
  type PresetSource,
  type EmulatedDetails,
} from './presets';
export {
  MODEL_PRESETS,
  modelPreset,
  modelFromParameterCount,
  customModel,
  checkModel,
  parameterCount,
  layerParameters,
  embeddingParameters,
  trainingFlops,
  activationBytes,
  layerActivationBytes,
  formatCount,
  ATTENTION_KERNELS,
  type AttentionKernel,
  type ModelSpec,
  type ModelFamily,
} from './models';
export {
  memoryPerGpu,
  parameterUnits,
  unitKinds,
  unitTotals,
  paddedElements,
  precisionOf,
  type MemoryBreakdown,
  type MemoryInput,
  type ParameterUnit,
  type PrecisionSpec,
  type StateAccounting,
  type UnitGranularity,
} from './memory';
export { ringCollective, hierarchicalAllGather, hierarchicalReduceScatter, pipelineChunks, type CollectiveCost, type GroupLayout, type RingOp } from './collectives';
export {
  STRATEGIES,
  predictStep,
  simulateUnits,
  strategyGroups,
  type Strategy,
  type StepSetup,
  type StepPrediction,
  type CommBreakdown,
  type StrategyGroups,
  type TimedUnit,
  type UnitScheduleInput,
  type UnitSchedule,
} from './schedule';
export {
  choosePartitionSize,
  planTraining,
  simulateScaling,
  largestMicroBatch,
  fastestPartition,
  type PartitionChoiceInput,
  type PartitionChoice,
  type PartitionCandidate,
  type PlannedCandidate,
  type PlanAlternative,
  type TrainingOptions,
  type TrainingPlan,
  type ScalingRow,
  type ScalingResult,
} from './planner';
export { runValidation, VALIDATION_RULES, VALIDATION_RULE_NAMES, type ValidationPoint, type ValidationReport, type ValidationRule } from './validation';
export {
  emulatedPresetFromBench,
  benchHeaderNumber,
  compareStepBench,
  type BenchJson,
  type BenchJsonRow,
  type CalibrationInput,
  type StepBenchResult,
  type StepComparison,
} from './calibrate';
export { renderLineChart, type LineChart, type ChartSeries } from './svg';
