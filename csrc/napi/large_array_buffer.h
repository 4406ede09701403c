// An ArrayBuffer over memory we own, beyond what Node-API can wrap on Node 20/21.
//
// napi_create_external_arraybuffer goes through node::Buffer::New, which refuses
// more than buffer.constants.MAX_LENGTH bytes: 2^32 on Node 20 and 21 (2^53 - 1
// since Node 22). It then runs the finalizer and fails, and node-addon-api's
// ArrayBuffer::New frees its finalizer data a second time: the `free(): double
// free` abort allocHost hit above 4 GiB. A plain `new ArrayBuffer(n)` has no such
// limit, because V8 itself takes byte lengths up to 2^53 - 1. This class makes
// that V8 call (ArrayBuffer::NewBackingStore with our deleter, then
// ArrayBuffer::New), the one place the addon steps outside Node-API, and only
// where Node-API cannot do it (allocHost uses Node-API on Node >= 22).
//
// ABI: the addon is built against Node-API headers only (cmake-js ships no V8
// headers) and must keep loading on any Node, so nothing here links against V8:
//  - the four V8 entry points are looked up with dlsym by their Itanium-mangled
//    names, unchanged since V8 8 (Node 14); a Node built otherwise (libc++, or
//    without them) just makes Available() say why, and allocHost reports
//    MICS_UNAVAILABLE above 4 GiB there;
//  - their types are declared here, not taken from <v8.h>: pointers to opaque
//    classes, std::unique_ptr/std::shared_ptr of one, and v8::Local<T>, which is
//    one pointer (a handle slot) and trivially copyable, returned in a register;
//  - a napi_value is the address of a V8 handle slot, exactly as Node-API itself
//    converts v8::Local (JsValueFromV8LocalValue in Node's js_native_api_v8.h);
//  - Electron (V8 sandbox: no external backing stores) is refused up front.
// The deleter runs when V8 frees the buffer: on any thread (V8 sweeps array
// buffers concurrently), possibly after the environment is gone, so it must be
// thread-safe and touch no napi_env. The addon is linked -z nodelete, so its code
// is still mapped then, even in a worker that loaded it alone.
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
  // when Unavailable(env) is not empty; bytes <= 2^53 - 1. Must be called on env's
  // JS thread inside a callback (a handle scope).
  static napi_value New(napi_env env, void* data, std::size_t bytes, Deleter deleter, void* deleterData);
};

}  // namespace mics::napi
