// How many CUDA devices this process can use, or 0 and why. Compiled in every
// build: without the CUDA parts it says so instead of touching any driver.
#pragma once

#include <string>

namespace mics::cuda {

struct DeviceProbe {
  int deviceCount = 0;
  std::string reason;  // why deviceCount is 0; empty otherwise
  int driverVersion = 0;
  int runtimeVersion = 0;
};

DeviceProbe ProbeDevices();

}  // namespace mics::cuda
