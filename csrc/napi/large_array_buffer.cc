#include "napi/large_array_buffer.h"

#include <dlfcn.h>

#include <memory>
#include <mutex>
#include <utility>

// V8's types as far as these calls need them (see the header): opaque classes, and
// Local<T>, a single handle-slot pointer.
namespace v8 {
class Isolate;
class BackingStore;
class ArrayBuffer;
}  // namespace v8

namespace mics::napi {

namespace {

struct LocalHandle {  // v8::Local<v8::ArrayBuffer>: trivially copyable, returned in a register
  void* slot;
};

// std::unique_ptr<v8::BackingStore> as returned: one pointer, not trivially
// destructible (so returned through caller-provided memory, like unique_ptr). The
// pointer is always taken over by a shared_ptr right away.
struct UniqueStore {
  v8::BackingStore* store;
  ~UniqueStore() {}
};

using DeleterCallback = void (*)(void*, std::size_t, void*);
using GetCurrentFn = v8::Isolate* (*)();
using NewBackingStoreFn = UniqueStore (*)(void*, std::size_t, DeleterCallback, void*);
using NewArrayBufferFn = LocalHandle (*)(v8::Isolate*, std::shared_ptr<v8::BackingStore>);
using DestroyBackingStoreFn = void (*)(v8::BackingStore*);

struct V8Entry {
  GetCurrentFn getCurrent = nullptr;                    // v8::Isolate::GetCurrent()
  NewBackingStoreFn newBackingStore = nullptr;          // v8::ArrayBuffer::NewBackingStore(void*, size_t, DeleterCallback, void*)
  NewArrayBufferFn newArrayBuffer = nullptr;            // v8::ArrayBuffer::New(Isolate*, std::shared_ptr<BackingStore>)
  DestroyBackingStoreFn destroyBackingStore = nullptr;  // v8::BackingStore::~BackingStore()
  std::string unavailable;                              // why not, empty when usable
};

template <typename Fn>
Fn Lookup(const char* symbol, std::string& missing) {
  void* p = dlsym(RTLD_DEFAULT, symbol);
  if (p == nullptr && missing.empty()) missing = symbol;
  return reinterpret_cast<Fn>(p);
}

// Whether process.versions has `key` (electron: a V8 sandbox without external backing stores).
bool HasVersion(napi_env env, const char* key) {
  napi_value global, process, versions;
  bool has = false;
  if (napi_get_global(env, &global) != napi_ok || napi_get_named_property(env, global, "process", &process) != napi_ok ||
      napi_get_named_property(env, process, "versions", &versions) != napi_ok ||
      napi_has_named_property(env, versions, key, &has) != napi_ok) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    return false;
  }
  return has;
}

const V8Entry& Entry(napi_env env) {
  static std::once_flag once;
  static V8Entry* entry = new V8Entry();  // never freed: deleters may run at exit
  std::call_once(once, [env] {
    if (HasVersion(env, "electron")) {
      entry->unavailable = "Electron's V8 sandbox allows no ArrayBuffer over outside memory";
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
  UniqueStore unique = v8api.newBackingStore(data, bytes, deleter, deleterData);
  // The shared_ptr's deleter is what `delete store` does (BackingStore's operator
  // delete is ::operator delete), with the destructor looked up above.
  DestroyBackingStoreFn destroy = v8api.destroyBackingStore;
  std::shared_ptr<v8::BackingStore> store(unique.store, [destroy](v8::BackingStore* p) {
    destroy(p);
    ::operator delete(static_cast<void*>(p));
  });
  // Never empty: like every V8 allocation of a small object it aborts only when the
  // heap is exhausted. So once the store exists, the deleter belongs to V8.
  LocalHandle buffer = v8api.newArrayBuffer(isolate, std::move(store));
  // Node-API's own conversion: the handle lives in the current callback's scope.
  return static_cast<napi_value>(buffer.slot);
}

}  // namespace mics::napi
