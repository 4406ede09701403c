#include "napi/large_array_buffer.h"

#include <dlfcn.h>
#include <v8.h>

// Only NODE_MODULE_VERSION / NODE_MAJOR_VERSION are wanted; the header also
// (re)defines NAPI_VERSION to the runtime's, which must stay the build's (8).
#pragma push_macro("NAPI_VERSION")
#undef NAPI_VERSION
#include <node_version.h>
#undef NAPI_VERSION
#pragma pop_macro("NAPI_VERSION")

#include <memory>
#include <mutex>
#include <utility>

namespace mics::napi {

namespace {

// The V8 functions, by their Itanium-mangled names (stable since V8 8 / Node 14).
using GetCurrentFn = v8::Isolate* (*)();
using NewBackingStoreFn = std::unique_ptr<v8::BackingStore> (*)(void*, std::size_t, v8::BackingStore::DeleterCallback,
                                                                void*);
using NewArrayBufferFn = v8::Local<v8::ArrayBuffer> (*)(v8::Isolate*, std::shared_ptr<v8::BackingStore>);
using DestroyBackingStoreFn = void (*)(v8::BackingStore*);

struct V8Entry {
  GetCurrentFn getCurrent = nullptr;
  NewBackingStoreFn newBackingStore = nullptr;
  NewArrayBufferFn newArrayBuffer = nullptr;
  DestroyBackingStoreFn destroyBackingStore = nullptr;  // v8::BackingStore::~BackingStore()
  std::string unavailable;                              // why not, empty when usable
};

template <typename Fn>
Fn Lookup(const char* symbol, std::string& missing) {
  void* p = dlsym(RTLD_DEFAULT, symbol);
  if (p == nullptr && missing.empty()) missing = symbol;
  return reinterpret_cast<Fn>(p);
}

// process.versions.modules of the running Node, or "" when it cannot be read.
std::string RunningModuleVersion(napi_env env) {
  napi_value global, process, versions, modules;
  char text[16] = {0};
  std::size_t length = 0;
  if (napi_get_global(env, &global) != napi_ok || napi_get_named_property(env, global, "process", &process) != napi_ok ||
      napi_get_named_property(env, process, "versions", &versions) != napi_ok ||
      napi_get_named_property(env, versions, "modules", &modules) != napi_ok ||
      napi_get_value_string_utf8(env, modules, text, sizeof(text), &length) != napi_ok) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    return "";
  }
  return std::string(text, length);
}

const V8Entry& Entry(napi_env env) {
  static std::once_flag once;
  static V8Entry* entry = new V8Entry();  // never freed: deleters may run at exit
  std::call_once(once, [env] {
    const std::string built = std::to_string(NODE_MODULE_VERSION);
    const std::string running = RunningModuleVersion(env);
    if (running != built) {
      entry->unavailable = "this addon was compiled for NODE_MODULE_VERSION " + built + " (Node " +
                           std::to_string(NODE_MAJOR_VERSION) + ") but runs on " +
                           (running.empty() ? std::string("an unknown version") : running);
      return;
    }
    std::string missing;
    entry->getCurrent = Lookup<GetCurrentFn>("_ZN2v87Isolate10GetCurrentEv", missing);
    entry->newBackingStore =
        Lookup<NewBackingStoreFn>("_ZN2v811ArrayBuffer15NewBackingStoreEPvmPFvS1_mS1_ES1_", missing);
    entry->newArrayBuffer =
        Lookup<NewArrayBufferFn>("_ZN2v811ArrayBuffer3NewEPNS_7IsolateESt10shared_ptrINS_12BackingStoreEE", missing);
    entry->destroyBackingStore = Lookup<DestroyBackingStoreFn>("_ZN2v812BackingStoreD1Ev", missing);
    if (!missing.empty()) entry->unavailable = "the running Node does not export V8's " + missing;
  });
  return *entry;
}

}  // namespace

std::string LargeArrayBuffer::Unavailable(napi_env env) { return Entry(env).unavailable; }

napi_value LargeArrayBuffer::New(napi_env env, void* data, std::size_t bytes, Deleter deleter, void* deleterData) {
  const V8Entry& v8api = Entry(env);
  if (!v8api.unavailable.empty()) return nullptr;
  v8::Isolate* isolate = v8api.getCurrent();
  if (isolate == nullptr) return nullptr;
  std::unique_ptr<v8::BackingStore> unique = v8api.newBackingStore(data, bytes, deleter, deleterData);
  // The shared_ptr's deleter is ours, so nothing here links against V8: it is what
  // `delete store` does (BackingStore::operator delete is ::operator delete).
  DestroyBackingStoreFn destroy = v8api.destroyBackingStore;
  std::shared_ptr<v8::BackingStore> store(unique.release(), [destroy](v8::BackingStore* p) {
    destroy(p);
    ::operator delete(p);
  });
  // Never empty: like every V8 allocation of a small object it aborts only when the
  // heap is exhausted. So once the store exists, the deleter belongs to V8.
  v8::Local<v8::ArrayBuffer> buffer = v8api.newArrayBuffer(isolate, std::move(store));
  // Node-API's own conversion (v8impl::JsValueFromV8LocalValue); the handle lives
  // in the handle scope of the current callback.
  return reinterpret_cast<napi_value>(*buffer);
}

}  // namespace mics::napi
