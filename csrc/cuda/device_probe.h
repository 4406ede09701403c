// How many CUDA devices this process can use, or 0 and why. Compiled in every
// build: without the CUDA parts it says so instead of touching any driver.
#pragma once

#include <string>

namespace mics::cuda {

struct DeviceProbe {
  int deviceCount = 0;
  std::string reason;  // why deviceCount is 0; empty otherwise
  int driverVersion = 0;   // the CUDA version the driver supports (12040 = 12.4); 0 without a driver
  int runtimeVersion = 0;  // the CUDA runtime compiled in (13000 = 13.0); 0 without CUDA parts
  std::string driverRelease;  // the NVIDIA kernel module's version ("580.65.06"), "" when unknown
  bool driverTooOld = false;  // a driver is there but supports an older CUDA than the runtime
};

DeviceProbe ProbeDevices();

// The oldest NVIDIA driver branch that supports CUDA `major` (13 -> 580); 0 when unknown.
int MinimumDriverBranch(int cudaMajor);

// The NVIDIA kernel module's version from the text of /proc/driver/nvidia/version
// ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  ..."), or "".
std::string ParseDriverRelease(const std::string& text);

// The message for a driver too old for the runtime, naming both versions and the
// driver needed. lib/core/capabilities.ts (cudaDriverCheck) words it the same way.
std::string DriverTooOldReason(int driverVersion, int runtimeVersion, const std::string& driverRelease);

}  // namespace mics::cuda
