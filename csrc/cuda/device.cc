#include "cuda/device.h"

#include <cuda_runtime_api.h>

#include "core/error.h"
#include "cuda/cuda_error.h"
#include "cuda/device_probe.h"

namespace mics::cuda {

namespace {

// The probe runs once: devices and drivers do not appear during a process's life.
const DeviceProbe& Probe() {
  static const DeviceProbe probe = ProbeDevices();
  return probe;
}

}  // namespace

void RequireCuda(const std::string& what) { DeviceCount(what); }

int DeviceCount(const std::string& what) {
  const DeviceProbe& probe = Probe();
  if (probe.deviceCount <= 0) {
    throw Error(ErrorCode::kUnavailable,
                what + ": CUDA is unavailable: " +
                    (probe.reason.empty() ? std::string("no CUDA device") : probe.reason));
  }
  return probe.deviceCount;
}

int ResolveDevice(int device, const std::string& what) {
  int count = DeviceCount(what);
  if (device < 0) {
    int current = 0;
    CheckCuda(cudaGetDevice(&current), what + ": cudaGetDevice");
    return current;
  }
  if (device >= count) {
    throw Error(ErrorCode::kInvalidArgument,
                what + ": device " + std::to_string(device) + " is not valid: this process sees " +
                    std::to_string(count) + " CUDA device(s), use 0.." + std::to_string(count - 1));
  }
  return device;
}

size_t TotalMemory(int device, const std::string& what) {
  int resolved = ResolveDevice(device, what);
  cudaDeviceProp properties{};
  CheckCuda(cudaGetDeviceProperties(&properties, resolved), what + ": cudaGetDeviceProperties");
  return properties.totalGlobalMem;
}

}  // namespace mics::cuda
