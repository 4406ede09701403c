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

void CUDART_CB RunHostCallback(void* data) {
  std::unique_ptr<std::function<void()>> fn(static_cast<std::function<void()>*>(data));
  (*fn)();
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

void CudaStream::OnComplete(std::function<void()> fn) const {
  auto* heap = new std::function<void()>(std::move(fn));
  cudaError_t err = cudaLaunchHostFunc(stream_, RunHostCallback, heap);
  if (err != cudaSuccess) {
    delete heap;
    throw CudaError(err, "cudaLaunchHostFunc");
  }
}

}  // namespace mics::cuda
