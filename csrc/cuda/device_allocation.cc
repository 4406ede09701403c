#include "cuda/device_allocation.h"

#include <cuda_runtime_api.h>

#include <string>

#include "cuda/cuda_error.h"
#include "cuda/device_guard.h"

namespace mics::cuda {

DeviceAllocation::DeviceAllocation(int device, std::size_t bytes) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  DeviceGuard guard(device);
  CheckCuda(cudaMalloc(&data_, bytes),
            "cudaMalloc(" + std::to_string(bytes) + " bytes) on device " + std::to_string(device));
}

DeviceAllocation::~DeviceAllocation() {
  if (data_ == nullptr) return;
  // cudaFree waits for work still using the memory. Errors cannot be reported from a
  // destructor (and at process exit the runtime may already be unloading).
  int previous = -1;
  bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device_ &&
                  cudaSetDevice(device_) == cudaSuccess;
  cudaFree(data_);
  if (switched) cudaSetDevice(previous);
  cudaGetLastError();
}

}  // namespace mics::cuda
