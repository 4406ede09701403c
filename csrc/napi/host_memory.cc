#include "napi/host_memory.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "cpu/host_region_registry.h"
#include "napi/errors.h"
#include "napi/large_array_buffer.h"

namespace mics::napi {

namespace {

// Far below JS's 2^53 - 1 and V8's ArrayBuffer limit, and beyond any machine's
// memory: 64 TiB of the 128 TiB user address space.
constexpr double kMaxBytes = static_cast<double>(1ull << 46);
// The largest external buffer Node 20 and 21 accept through Node-API (their
// buffer.constants.MAX_LENGTH; Node >= 22 takes 2^53 - 1).
constexpr std::size_t kNodeApiLimit = std::size_t{1} << 32;

// Finalizer state of a Node-API external buffer. On failure Node may or may not run
// the finalizer (Node 20 runs it inside the failed call), so nothing is freed twice:
// whoever sees the other side done frees.
struct ExternalHint {
  std::size_t bytes;
  bool creating = true;   // inside napi_create_external_arraybuffer
  bool finalized = false;  // the finalizer ran while creating
  bool counted = false;    // AdjustExternalMemory(+bytes) was done
};

// Node-API finalizer: JS thread, must not throw (nothing may cross back into C).
void FinalizeExternal(napi_env env, void* data, void* hint) noexcept {
  auto* h = static_cast<ExternalHint*>(hint);
  try {
    HostRegionRegistry::Instance().Free(static_cast<char*>(data));
  } catch (...) {
  }
  if (h->creating) {
    h->finalized = true;  // the creating call frees the hint
    return;
  }
  if (h->counted && env != nullptr) {
    int64_t ignored = 0;
    napi_adjust_external_memory(env, -static_cast<int64_t>(h->bytes), &ignored);
  }
  delete h;
}

// V8 deleter of a LargeArrayBuffer: any thread, possibly after the env is gone.
// (V8 counts its own backing stores as external memory: no adjustment here.)
void DeleteLarge(void* data, std::size_t, void*) noexcept {
  try {
    HostRegionRegistry::Instance().Free(static_cast<char*>(data));
  } catch (...) {
  }
}

void ClearPending(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
}

// The Node-API route; nullptr when Node refused (the region is then freed or left
// to a finalizer that Node may still run).
napi_value NodeApiBuffer(napi_env env, char* data, std::size_t bytes) {
  auto* hint = new ExternalHint{bytes};
  napi_value result = nullptr;
  napi_status status = napi_create_external_arraybuffer(env, data, bytes, FinalizeExternal, hint, &result);
  hint->creating = false;
  if (status != napi_ok) {
    ClearPending(env);
    if (hint->finalized) delete hint;  // Node ran the finalizer (which freed the region)
    // else: Node may run it later and it then frees both; if it never does, the
    // region leaks rather than being freed under a live finalizer.
    return nullptr;
  }
  int64_t ignored = 0;
  // Tells V8's GC what the buffer costs, so that dropped buffers are collected.
  hint->counted = napi_adjust_external_memory(env, static_cast<int64_t>(bytes), &ignored) == napi_ok;
  return result;
}

int NodeMajor(napi_env env) {
  const napi_node_version* version = nullptr;
  return napi_get_node_version(env, &version) == napi_ok && version != nullptr ? static_cast<int>(version->major) : 0;
}

Napi::Value AllocHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    const double requested = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(requested >= 0) || requested > kMaxBytes || std::floor(requested) != requested) {
      throw InvalidArgument("allocHost: byteLength " +
                            (info[0].IsNumber() ? info[0].ToString().Utf8Value() : std::string("(not a number)")) +
                            " is not valid: use a whole number of bytes in [0, 2^46]");
    }
    const auto bytes = static_cast<std::size_t>(requested);
    if (bytes == 0) return Napi::ArrayBuffer::New(env, 0);  // nothing to share
    // Decide the route before allocating, so that no route ever fails half way:
    // Node-API where Node takes the size, V8 directly only where it does not.
    const bool viaV8 = bytes > kNodeApiLimit && NodeMajor(env) < 22;
    if (viaV8) {
      const std::string why = LargeArrayBuffer::Unavailable(env);
      if (!why.empty()) {
        throw Error(ErrorCode::kUnavailable,
                    "allocHost: " + std::to_string(bytes) + " bytes exceed the 2^32 bytes Node " +
                        std::to_string(NodeMajor(env)) + " wraps through Node-API, and the way around it is off here: " +
                        why + " (allocate several arrays of at most 4 GiB, or use Node >= 22)");
      }
    }
    HostRegionRegistry& registry = HostRegionRegistry::Instance();
    char* data = registry.Allocate(bytes);
    napi_value buffer = nullptr;
    if (viaV8) {
      buffer = LargeArrayBuffer::New(env, data, bytes, DeleteLarge, nullptr);
      if (buffer == nullptr) registry.Free(data);  // New did not take it (the deleter did not run)
    } else {
      buffer = NodeApiBuffer(env, data, bytes);
    }
    if (buffer == nullptr) {
      throw Error(ErrorCode::kSystem, "allocHost: Node refused an external ArrayBuffer of " + std::to_string(bytes) +
                                          " bytes");
    }
    return Napi::Value(env, buffer);
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
