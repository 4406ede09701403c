// Which CUDA device a call runs on, and whether there is one at all.
#pragma once

#include <cstddef>
#include <string>

namespace mics::cuda {

// Throws Error(kUnavailable) naming why when this process can use no CUDA device
// (no driver, no device, ...); `what` prefixes the message ("DeviceTensor.alloc").
void RequireCuda(const std::string& what);

// Number of devices; throws like RequireCuda when there are none.
int DeviceCount(const std::string& what);

// The device a call should use: `device` when >= 0 (range-checked: kInvalidArgument
// naming the valid range), else the calling thread's current device.
int ResolveDevice(int device, const std::string& what);

// Total memory of `device` in bytes (cudaDeviceProp::totalGlobalMem), resolved and
// checked like ResolveDevice. What the engine plans `partitionSize: 'auto'` against.
size_t TotalMemory(int device, const std::string& what);

}  // namespace mics::cuda
