// What this binary is: version, compiler, and which optional parts were compiled.
#pragma once

#include <string>

namespace mics {

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string buildSystem;  // "node-gyp" or "cmake-js"
  bool cudaCompiled;        // csrc/cuda was built in (CMake with nvcc)
  std::string cudaVersion;  // toolkit version the CUDA parts were compiled with, or ""
};

BuildInfo GetBuildInfo();

}  // namespace mics
