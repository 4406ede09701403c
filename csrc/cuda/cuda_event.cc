#include "cuda/cuda_event.h"

#include <cuda_runtime_api.h>

#include <string>
#include <utility>

#include "core/error.h"
#include "cuda/cuda_error.h"
#include "cuda/cuda_stream.h"
#include "cuda/device.h"
#include "cuda/device_guard.h"

namespace mics::cuda {

CudaEvent::CudaEvent(int device, bool timing, bool blockingSync) {
  device_ = ResolveDevice(device, "CudaEvent");
  DeviceGuard guard(device_);
  unsigned flags = (timing ? cudaEventDefault : cudaEventDisableTiming) |
                   (blockingSync ? cudaEventBlockingSync : 0u);
  CheckCuda(cudaEventCreateWithFlags(&event_, flags), "cudaEventCreate on device " + std::to_string(device_));
}

CudaEvent::~CudaEvent() { Destroy(); }

CudaEvent::CudaEvent(CudaEvent&& other) noexcept
    : event_(std::exchange(other.event_, nullptr)), device_(other.device_) {}

CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept {
  if (this != &other) {
    Destroy();
    event_ = std::exchange(other.event_, nullptr);
    device_ = other.device_;
  }
  return *this;
}

void CudaEvent::Destroy() noexcept {
  if (event_ == nullptr) return;
  cudaEventDestroy(event_);
  event_ = nullptr;
}

void CudaEvent::Record(const CudaStream& stream) {
  if (stream.device() != device_) {
    throw Error(ErrorCode::kInvalidArgument, "CudaEvent.Record: event is on device " + std::to_string(device_) +
                                                 " but the stream is on device " + std::to_string(stream.device()));
  }
  CheckCuda(cudaEventRecord(event_, stream.native()), "cudaEventRecord");
}

bool CudaEvent::Query() const {
  cudaError_t err = cudaEventQuery(event_);
  if (err == cudaErrorNotReady) return false;
  CheckCuda(err, "cudaEventQuery");
  return true;
}

void CudaEvent::Synchronize() const { CheckCuda(cudaEventSynchronize(event_), "cudaEventSynchronize"); }

float CudaEvent::ElapsedMsSince(const CudaEvent& start) const {
  float ms = 0;
  CheckCuda(cudaEventElapsedTime(&ms, start.event_, event_), "cudaEventElapsedTime");
  return ms;
}

}  // namespace mics::cuda
