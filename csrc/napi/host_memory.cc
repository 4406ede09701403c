#include "napi/host_memory.h"

#include <cmath>
#include <string>

#include "cpu/host_region_registry.h"
#include "napi/errors.h"

namespace mics::napi {

namespace {

// 2^53 - 1 bytes would be the JS limit; ArrayBuffers stop far below it.
constexpr double kMaxBytes = 1ull << 46;

Napi::Value AllocHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Translate(env, [&]() -> Napi::Value {
    const double requested = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(requested >= 0) || requested > kMaxBytes || std::floor(requested) != requested) {
      throw Error(ErrorCode::kInvalidArgument,
                  "allocHost: byteLength " + (info[0].IsNumber() ? std::to_string(requested) : std::string("(not a number)")) +
                      " is not valid: use a whole number of bytes in [0, 2^46]");
    }
    const auto bytes = static_cast<std::size_t>(requested);
    if (bytes == 0) return Napi::ArrayBuffer::New(env, 0);  // nothing to share
    HostRegionRegistry& registry = HostRegionRegistry::Instance();
    char* data = registry.Allocate(bytes);
    // Tells V8's GC what the buffer costs, so that dropped buffers are collected.
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes));
    return Napi::ArrayBuffer::New(env, data, bytes, [bytes](Napi::Env finalizeEnv, void* freed) {
      HostRegionRegistry::Instance().Free(static_cast<char*>(freed));
      Napi::MemoryManagement::AdjustExternalMemory(finalizeEnv, -static_cast<int64_t>(bytes));
    });
  });
}

Napi::Value HostRegionCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(HostRegionRegistry::Instance().regionCount()));
}

}  // namespace

void InitHostMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("allocHost", Napi::Function::New(env, AllocHost, "allocHost"));
  exports.Set("hostRegionCount", Napi::Function::New(env, HostRegionCount, "hostRegionCount"));
}

}  // namespace mics::napi
