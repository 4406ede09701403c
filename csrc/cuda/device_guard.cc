#include "cuda/device_guard.h"

#include <cuda_runtime_api.h>

#include <string>

#include "cuda/cuda_error.h"

namespace mics::cuda {

DeviceGuard::DeviceGuard(int device) {
  CheckCuda(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device) {
    CheckCuda(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
    changed_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (changed_) cudaSetDevice(previous_);  // cannot throw from a destructor; best effort
}

}  // namespace mics::cuda
