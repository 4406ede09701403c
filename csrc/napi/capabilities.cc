#include "napi/capabilities.h"

#include "core/build_info.h"
#include "cuda/device_probe.h"
#include "nccl/nccl_config.h"
#include "nccl/nccl_library.h"

namespace mics::napi {

namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), GetBuildInfo().version);
}

Napi::Value BuildInfoObject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BuildInfo build = GetBuildInfo();
  Napi::Object out = Napi::Object::New(env);
  out.Set("version", build.version);
  out.Set("compiler", build.compiler);
  out.Set("buildSystem", build.buildSystem);
  out.Set("cuda", build.cudaCompiled);
  out.Set("cudaVersion", build.cudaVersion);
  return out;
}

Napi::Array StringArray(Napi::Env env, const std::vector<std::string>& items) {
  Napi::Array array = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) array.Set(static_cast<uint32_t>(i), items[i]);
  return array;
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);

  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("available", true);
  out.Set("cpu", cpu);

  const nccl::NcclLibrary& library = nccl::NcclLibrary::Get();
  Napi::Object ncclInfo = Napi::Object::New(env);
  ncclInfo.Set("found", library.loaded());
  ncclInfo.Set("searched", StringArray(env, library.searched()));
  if (library.loaded()) {
    nccl::Version v = nccl::DecodeVersion(library.versionCode());
    ncclInfo.Set("path", library.path());
    ncclInfo.Set("version", std::to_string(v.major) + "." + std::to_string(v.minor) + "." +
                                std::to_string(v.patch));
    ncclInfo.Set("versionCode", library.versionCode());
    const nccl::Symbols& symbols = library.symbols();
    ncclInfo.Set("nonBlocking", symbols.commInitRankConfig != nullptr);  // 2.14+
    ncclInfo.Set("split", symbols.commSplit != nullptr);                 // 2.18+
    ncclInfo.Set("finalize", symbols.commFinalize != nullptr);           // 2.14+
    ncclInfo.Set("lastError", symbols.getLastError != nullptr);          // 2.13+
  } else {
    ncclInfo.Set("error", library.error());
  }
  out.Set("nccl", ncclInfo);

  cuda::DeviceProbe probe = cuda::ProbeDevices();
  Napi::Object cudaInfo = Napi::Object::New(env);
  cudaInfo.Set("compiled", GetBuildInfo().cudaCompiled);
  cudaInfo.Set("deviceCount", probe.deviceCount);
  if (!probe.reason.empty()) cudaInfo.Set("reason", probe.reason);
  cudaInfo.Set("driverVersion", probe.driverVersion);
  cudaInfo.Set("runtimeVersion", probe.runtimeVersion);
  cudaInfo.Set("driverRelease", probe.driverRelease);
  cudaInfo.Set("driverTooOld", probe.driverTooOld);
  out.Set("cuda", cudaInfo);
  return out;
}

// The exact bytes of the ncclConfig_t passed to NCCL (ncclCommInitRankConfig,
// ncclCommSplit), and the layout version they carry: for `mics info --json` and tests.
Napi::Value NcclConfigBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const nccl::Config config = nccl::MakeConfig(false);
  Napi::Object out = Napi::Object::New(env);
  out.Set("layoutVersion", static_cast<double>(nccl::kConfigLayoutVersion));
  out.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(&config), sizeof(config)));
  return out;
}

}  // namespace

void InitCapabilities(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfoObject, "buildInfo"));
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  exports.Set("ncclConfig", Napi::Function::New(env, NcclConfigBytes, "ncclConfig"));
}

}  // namespace mics::napi
