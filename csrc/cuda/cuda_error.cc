#include "cuda/cuda_error.h"

namespace mics::cuda {

ErrorCode ErrorCodeForCuda(cudaError_t err) {
  switch (err) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorStubLibrary:
    case cudaErrorDevicesUnavailable:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorSystemNotReady:
    case cudaErrorCallRequiresNewerDriver:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
      return ErrorCode::kUnavailable;
    case cudaErrorMemoryAllocation:
    case cudaErrorOperatingSystem:
    case cudaErrorNotPermitted:
    case cudaErrorNotSupported:
    case cudaErrorECCUncorrectable:
      return ErrorCode::kSystem;
    default:
      return ErrorCode::kInternal;
  }
}

Error CudaError(cudaError_t err, const std::string& what) {
  // Reset the runtime's last-error slot so the next unrelated call does not report
  // this one again (sticky errors stay: the context is unusable after them).
  cudaGetLastError();
  return Error(ErrorCodeForCuda(err),
               what + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

}  // namespace mics::cuda
