#include "cuda/device_probe.h"

#include <cctype>
#include <fstream>
#include <sstream>

#ifdef MICS_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace mics::cuda {

namespace {

std::string CudaVersionText(int code) {
  return std::to_string(code / 1000) + "." + std::to_string((code % 1000) / 10);
}

#ifdef MICS_WITH_CUDA
std::string ReadDriverRelease() {
  std::ifstream file("/proc/driver/nvidia/version");
  if (!file) return "";
  std::stringstream text;
  text << file.rdbuf();
  return ParseDriverRelease(text.str());
}
#endif

}  // namespace

int MinimumDriverBranch(int cudaMajor) {
  switch (cudaMajor) {
    case 11: return 450;
    case 12: return 525;
    case 13: return 580;
    default: return 0;
  }
}

std::string ParseDriverRelease(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find("NVRM version") == std::string::npos) continue;
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      // The first word made of digits and dots with a dot in it ("x86_64" has none).
      bool digitsAndDots = std::isdigit(static_cast<unsigned char>(word[0])) != 0;
      for (char c : word) digitsAndDots = digitsAndDots && (std::isdigit(static_cast<unsigned char>(c)) || c == '.');
      if (digitsAndDots && word.find('.') != std::string::npos) return word;
    }
  }
  return "";
}

std::string DriverTooOldReason(int driverVersion, int runtimeVersion, const std::string& driverRelease) {
  const int major = runtimeVersion / 1000;
  const int branch = MinimumDriverBranch(major);
  std::string text = "CUDA driver too old: the NVIDIA driver" + (driverRelease.empty() ? "" : " " + driverRelease) +
                     " supports CUDA " + CudaVersionText(driverVersion) + ", but this build's CUDA runtime is " +
                     CudaVersionText(runtimeVersion) + " and needs a driver for CUDA " + std::to_string(major) +
                     ".0 or newer";
  if (branch > 0) text += " (NVIDIA " + std::to_string(branch) + " or newer)";
  return text + ": update the driver, or use a build made with an older CUDA toolkit";
}

DeviceProbe ProbeDevices() {
  DeviceProbe probe;
#ifdef MICS_WITH_CUDA
  cudaRuntimeGetVersion(&probe.runtimeVersion);
  cudaDriverGetVersion(&probe.driverVersion);  // 0 when no driver is installed
  probe.driverRelease = ReadDriverRelease();
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // Minor-version compatibility: a driver of the runtime's major version will do,
    // an older one will not (cudaErrorInsufficientDriver) unless a forward-compatibility
    // package raised what cudaDriverGetVersion reports.
    probe.driverTooOld = probe.driverVersion > 0 && (err == cudaErrorInsufficientDriver ||
                                                     probe.driverVersion / 1000 < probe.runtimeVersion / 1000);
    if (probe.driverTooOld) {
      probe.reason = DriverTooOldReason(probe.driverVersion, probe.runtimeVersion, probe.driverRelease);
    } else {
      probe.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
      if (probe.driverVersion == 0) probe.reason = "no CUDA driver (" + probe.reason + ")";
    }
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
