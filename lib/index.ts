/**
 * mics: MiCS sharded data-parallel training for Node.js.
 *
 * @packageDocumentation
 */
export { packageVersion } from './core/version';
export { MicsError, type MicsErrorCode, type MicsErrorDetails } from './core/errors';
export {
  DTYPES,
  REDUCE_OPS,
  elementBytes,
  toBFloat16Bits,
  fromBFloat16Bits,
  toFloat16Bits,
  fromFloat16Bits,
  type DType,
  type ReduceOp,
  type HostArray,
  type HostArrayOf,
  type HostTensor,
  type TensorView,
} from './core/dtypes';
export type { BuildInfo, Capabilities } from './core/native';
export { init, type InitOptions } from './comm/init';
export {
  Communicator,
  type Backend,
  type CollectiveOptions,
  type ReduceOptions,
  type AccumulateOptions,
  type BroadcastOptions,
} from './comm/communicator';
export {
  planGroups,
  MAX_WORLD_SIZE,
  divisors,
  hierarchicalPartitionSizes,
  singleNodePartitionSizes,
  type GroupPlan,
  type RankGroups,
  type PlanGroupsOptions,
  type HierarchicalOption,
  type FlatCause,
} from './comm/groups';
export { createGroups, destroyGroups, type MicsGroups, type CreateGroupsOptions } from './comm/mics-groups';
export { type Tensor } from './comm/tensor';
export { allocHost, maxHostElements } from './comm/host-memory';
export { DeviceTensor, cudaKernels, cudaAvailable, type CudaAvailability } from './cuda/device-tensor';
export { hostKernels, type HostAdamWArgs, type HostSgdArgs, type HostTensorOf, type HostViewOf, type AdamWOptions, type SgdOptions } from './kernels/host';
export {
  allGather,
  reduceScatter,
  allReduce,
  broadcast,
  barrier,
  type AllGatherOptions,
  type ReduceScatterOptions,
  type CollectiveTarget,
  type GroupName,
} from './comm/collectives';
export { StoreServer, StoreClient, type StoreServerOptions, type StoreClientOptions } from './store';
export * from './engine';
export {
  choosePartitionSize,
  planTraining,
  simulateScaling,
  runValidation,
  clusterPreset,
  modelPreset,
  PLAN_LIMITS,
  type PartitionChoice,
  type PartitionChoiceInput,
  type TrainingPlan,
  type ScalingResult,
  type ClusterPreset,
  type ModelSpec,
} from './plan';
