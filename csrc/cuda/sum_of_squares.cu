// Partial L2 norm: sum of squares of a shard, in two deterministic passes.
#include "cuda/device_guard.h"
#include "cuda/kernel_args.h"
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mics::cuda {

namespace {

// Pass 1 uses at most this many blocks (and pass 2 one block of as many threads).
constexpr unsigned kMaxPartials = 1024;

template <typename Acc>
__device__ Acc BlockSum(Acc value) {
  __shared__ Acc warpSums[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset /= 2) value = value + __shfl_down_sync(0xffffffffu, value, offset);
  if (lane == 0) warpSums[warp] = value;
  __syncthreads();
  const unsigned warps = (blockDim.x + 31) / 32;
  value = threadIdx.x < warps ? warpSums[threadIdx.x] : Acc(0);
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset /= 2) value = value + __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;  // valid in thread 0
}

template <typename Acc, typename T>
__global__ void PartialSumOfSquares(const T* __restrict__ x, std::size_t n, Acc* __restrict__ partial) {
  Acc sum = 0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const Acc v = static_cast<Acc>(device::ToFloat(x[i]));
    sum = sum + v * v;
  }
  sum = BlockSum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

template <typename Acc>
__global__ void FinishSum(const Acc* __restrict__ partial, unsigned count, Acc* out, bool accumulate) {
  Acc sum = threadIdx.x < count ? partial[threadIdx.x] : Acc(0);
  sum = BlockSum(sum);
  if (threadIdx.x == 0) out[0] = accumulate ? out[0] + sum : sum;
}

template <typename Acc, typename T>
void Run(const DeviceTensor& x, Acc* out, bool accumulate, cudaStream_t stream) {
  const std::size_t n = x.length();
  const unsigned blocks = static_cast<unsigned>(
      std::min<std::size_t>(std::max<std::size_t>((n + device::kThreads - 1) / device::kThreads, 1), kMaxPartials));
  // The partials live in stream-ordered memory: no synchronisation needed. Where
  // memory pools are not supported, fall back to cudaMalloc and wait before freeing.
  void* scratch = nullptr;
  const std::size_t bytes = blocks * sizeof(Acc);
  bool pooled = true;
  cudaError_t err = cudaMallocAsync(&scratch, bytes, stream);
  if (err == cudaErrorNotSupported) {
    cudaGetLastError();
    pooled = false;
    CheckCuda(cudaMalloc(&scratch, bytes), "sumOfSquares: cudaMalloc");
  } else {
    CheckCuda(err, "sumOfSquares: cudaMallocAsync");
  }
  Acc* partial = static_cast<Acc*>(scratch);
  PartialSumOfSquares<Acc, T><<<blocks, device::kThreads, 0, stream>>>(static_cast<const T*>(x.data()), n, partial);
  cudaError_t launch = cudaGetLastError();
  if (launch == cudaSuccess) {
    FinishSum<Acc><<<1, kMaxPartials, 0, stream>>>(partial, blocks, out, accumulate);
    launch = cudaGetLastError();
  }
  if (pooled) {
    cudaFreeAsync(scratch, stream);
  } else {
    cudaStreamSynchronize(stream);
    cudaFree(scratch);
  }
  CheckCuda(launch, "sumOfSquares: kernel launch");
}

template <typename Acc>
void RunFor(const DeviceTensor& x, Acc* out, bool accumulate, cudaStream_t stream) {
  switch (x.dtype()) {
    case DType::kF32: Run<Acc, float>(x, out, accumulate, stream); break;
    case DType::kBF16: Run<Acc, __nv_bfloat16>(x, out, accumulate, stream); break;
    default: Run<Acc, __half>(x, out, accumulate, stream); break;
  }
}

}  // namespace

void SumOfSquares(const DeviceTensor& x, const DeviceTensor& out, bool accumulate, const CudaStream& stream) {
  KernelArgs("sumOfSquares")
      .Tensor(x, "x", stream)
      .Tensor(out, "out", stream)
      .DTypeIn(x, "x", {DType::kF32, DType::kBF16, DType::kF16})
      .DTypeIn(out, "out", {DType::kF32, DType::kF64})
      .MinLength(out, "out", 1)
      .Disjoint(x, "x", out, "out");
  DeviceGuard guard(stream.device());
  if (out.dtype() == DType::kF64) RunFor<double>(x, static_cast<double*>(out.data()), accumulate, stream.native());
  else RunFor<float>(x, static_cast<float*>(out.data()), accumulate, stream.native());
}

}  // namespace mics::cuda
