#include "core/build_info.h"

#ifndef MICS_VERSION
#define MICS_VERSION "0.0.0-dev"
#endif
#ifndef MICS_BUILD_SYSTEM
#define MICS_BUILD_SYSTEM "unknown"
#endif

namespace mics {

namespace {
std::string CompilerString() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "g++ " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}
}  // namespace

BuildInfo GetBuildInfo() {
  BuildInfo info;
  info.version = MICS_VERSION;
  info.compiler = CompilerString();
  info.buildSystem = MICS_BUILD_SYSTEM;
#ifdef MICS_WITH_CUDA
  info.cudaCompiled = true;
  info.cudaVersion = MICS_CUDA_VERSION;
#else
  info.cudaCompiled = false;
#endif
  return info;
}

}  // namespace mics
