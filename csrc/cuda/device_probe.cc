#include "cuda/device_probe.h"

#ifdef MICS_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace mics::cuda {

DeviceProbe ProbeDevices() {
  DeviceProbe probe;
#ifdef MICS_WITH_CUDA
  cudaRuntimeGetVersion(&probe.runtimeVersion);
  cudaDriverGetVersion(&probe.driverVersion);  // 0 when no driver is installed
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    probe.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    if (probe.driverVersion == 0) probe.reason = "no CUDA driver (" + probe.reason + ")";
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return probe;
  }
  probe.deviceCount = count;
  if (count == 0) probe.reason = "the CUDA driver reports no devices";
#else
  probe.reason = "this build has no CUDA parts (node-gyp build; build with CMake where nvcc exists)";
#endif
  return probe;
}

}  // namespace mics::cuda
