#include "cuda/cuda_stream.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <utility>

#include "cuda/cuda_error.h"
#include "cuda/cuda_event.h"
#include "cuda/device.h"
#include "cuda/device_guard.h"

namespace mics::cuda {

namespace {

void CUDART_CB RunStreamCallback(cudaStream_t, cudaError_t status, void* data) {
  std::unique_ptr<std::function<void(int)>> fn(static_cast<std::function<void(int)>*>(data));
  try {
    (*fn)(static_cast<int>(status));
  } catch (...) {
    // Nothing may unwind into the CUDA runtime's thread.
  }
}

}  // namespace

CudaStream::CudaStream(int device, bool nonBlocking, int priority) {
  device_ = ResolveDevice(device, "CudaStream");
  DeviceGuard guard(device_);
  CheckCuda(cudaStreamCreateWithPriority(&stream_, nonBlocking ? cudaStreamNonBlocking : cudaStreamDefault,
                                         priority),
            "cudaStreamCreate on device " + std::to_string(device_));
}

CudaStream::~CudaStream() { Destroy(); }

CudaStream::CudaStream(CudaStream&& other) noexcept
    : stream_(std::exchange(other.stream_, nullptr)), device_(other.device_) {}

CudaStream& CudaStream::operator=(CudaStream&& other) noexcept {
  if (this != &other) {
    Destroy();
    stream_ = std::exchange(other.stream_, nullptr);
    device_ = other.device_;
  }
  return *this;
}

void CudaStream::Destroy() noexcept {
  if (stream_ == nullptr) return;
  // cudaStreamDestroy returns at once; queued work still completes.
  cudaStreamDestroy(stream_);
  stream_ = nullptr;
}

void CudaStream::Synchronize() const {
  CheckCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize on device " + std::to_string(device_));
}

bool CudaStream::Query() const {
  cudaError_t err = cudaStreamQuery(stream_);
  if (err == cudaErrorNotReady) return false;
  CheckCuda(err, "cudaStreamQuery on device " + std::to_string(device_));
  return true;
}

void CudaStream::Wait(const CudaEvent& event) const {
  CheckCuda(cudaStreamWaitEvent(stream_, event.native(), 0), "cudaStreamWaitEvent");
}

void CudaStream::OnComplete(std::function<void(int status)> fn) const {
  auto* heap = new std::function<void(int)>(std::move(fn));
  cudaError_t err = cudaStreamAddCallback(stream_, RunStreamCallback, heap, 0);
  if (err != cudaSuccess) {
    delete heap;
    throw CudaError(err, "cudaStreamAddCallback");
  }
}

Error CudaStream::CompletionError(int status, const std::string& what) {
  return CudaError(static_cast<cudaError_t>(status), what);
}

}  // namespace mics::cuda
