// An ArrayBuffer over memory we own, beyond what Node-API can wrap.
//
// napi_create_external_arraybuffer goes through node::Buffer::New, which refuses
// more than buffer.constants.MAX_LENGTH bytes: 2^32 on Node 20 and 21 (2^53 - 1
// since Node 22). It then runs the finalizer and fails, and node-addon-api's
// ArrayBuffer::New frees its finalizer data a second time: the `free(): double
// free` abort allocHost hit above 4 GiB. A plain `new ArrayBuffer(n)` has no such
// limit, because V8 itself takes byte lengths up to 2^53 - 1. This class makes
// that V8 call (ArrayBuffer::NewBackingStore with our deleter, then
// ArrayBuffer::New), the one place the addon steps outside Node-API.
//
// ABI: V8's C++ API is not stable across Node majors, so
//  - the four V8 entry points are looked up with dlsym at run time, never linked:
//    the addon still loads (and a prebuild stays usable) on any Node version;
//  - they are only called when the running Node has the NODE_MODULE_VERSION this
//    file was compiled against (process.versions.modules), so the types in <v8.h>
//    describe the running V8. Elsewhere Available() says why not, and the caller
//    uses Node-API (fine on Node >= 22) or reports MICS_UNAVAILABLE.
//  - a napi_value is the address of a V8 handle slot, exactly as Node's own
//    Node-API implementation converts v8::Local (JsValueFromV8LocalValue).
// The deleter runs when V8 frees the buffer: on any thread (V8 sweeps array
// buffers concurrently), possibly after the environment is gone, so it must be
// thread-safe and touch no napi_env. The addon is linked -z nodelete, so its code
// is still mapped then even in a worker that loaded it alone.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <string>

namespace mics::napi {

class LargeArrayBuffer {
 public:
  using Deleter = void (*)(void* data, std::size_t length, void* deleterData);

  // Empty when New() can be used in this process, else why not (for messages).
  static std::string Unavailable(napi_env env);
  // A new ArrayBuffer over [data, data + bytes); `deleter(data, bytes, deleterData)`
  // runs once when it is collected. Returns nullptr, without running the deleter,
  // when Unavailable(env) is not empty; bytes <= 2^53 - 1. Must be called on env's JS thread inside a callback (a handle scope).
  static napi_value New(napi_env env, void* data, std::size_t bytes, Deleter deleter, void* deleterData);
};

}  // namespace mics::napi
