// One cudaMalloc'd block of device memory, freed when the last owner lets go.
// DeviceTensor and its views share it through a shared_ptr.
#pragma once

#include <cstddef>

namespace mics::cuda {

class DeviceAllocation {
 public:
  // Allocates `bytes` on `device` (a resolved device index). bytes == 0 allocates
  // nothing (data() is nullptr). Throws mics::Error (kSystem when out of memory,
  // naming the size and device).
  DeviceAllocation(int device, std::size_t bytes);
  ~DeviceAllocation();
  DeviceAllocation(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(const DeviceAllocation&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  int device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  int device_ = -1;
};

}  // namespace mics::cuda
