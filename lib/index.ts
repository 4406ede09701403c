/**
 * mics: MiCS sharded data-parallel training communication for Node.js.
 *
 * @packageDocumentation
 */
export { loadAddon, type BuildInfo, type Capabilities } from './native';
export { packageVersion } from './version';
export { init, type InitOptions } from './comm/init';
export {
  Communicator,
  type Backend,
  type CollectiveOptions,
  type ReduceOptions,
  type BroadcastOptions,
} from './comm/communicator';
export { MicsError } from './errors';
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
  type HostTensor,
  type TensorView,
} from './comm/dtypes';
export {
  planGroups,
  hierarchicalSlots,
  divisors,
  hierarchicalPartitionSizes,
  singleNodePartitionSizes,
  MicsArgumentError,
  type GroupPlan,
  type RankGroups,
  type PlanGroupsOptions,
  type HierarchicalOption,
  type FlatCause,
  type HierarchicalSlots,
  type SlotCopy,
  type Stage2Gather,
} from './comm/groups';
export { createGroups, destroyGroups, type MicsGroups, type CreateGroupsOptions } from './comm/mics-groups';
export { hierarchicalAllGather } from './comm/hierarchical';
export { type Tensor } from './comm/tensor';
export { allocHost, MAX_HOST_BYTES, type HostArrayOf } from './comm/host-memory';
export { DeviceTensor, cudaKernels, cudaAvailable, type CudaAvailability } from './cuda/device-tensor';
export {
  allGather,
  reduceScatter,
  allReduce,
  broadcast,
  barrier,
  type AllGatherOptions,
  type CollectiveTarget,
  type GroupName,
} from './comm/collectives';
export {
  StoreServer,
  StoreClient,
  StoreError,
  DEFAULT_MAX_FRAME_BYTES,
  type StoreServerOptions,
  type StoreClientOptions,
  type StoreErrorCode,
} from './store';
