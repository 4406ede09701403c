// Makes a device current for a scope and restores the previous one (the current
// device is per host thread in CUDA).
#pragma once

namespace mics::cuda {

class DeviceGuard {
 public:
  explicit DeviceGuard(int device);  // throws mics::Error when cudaSetDevice fails
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  bool changed_ = false;
};

}  // namespace mics::cuda
