// The bytes of a host TypedArray argument, checked so that the memory cannot move
// or vanish under an op that runs on another thread.
//
// Refused with MICS_INVALID_ARGUMENT naming `role`:
//  - a SharedArrayBuffer (N-API sees no ArrayBuffer: napi_is_arraybuffer is false),
//    which other threads may write while a peer reads it, and which may be growable;
//  - a detached ArrayBuffer (transferred, e.g. postMessage / structuredClone);
//  - a resizable ArrayBuffer (`new ArrayBuffer(n, {maxByteLength})`): shrinking it
//    while an op is in flight would unmap pages a peer or our thread still uses.
//    N-API has no call for this, so it reads the buffer's `resizable` property (a
//    getter on ArrayBuffer.prototype); a program that redefines that getter can
//    fool it, as it could fool the TypeScript layer.
// The caller keeps a reference to the TypedArray until the op settles; that keeps
// the memory alive unless the program detaches the buffer meanwhile (transfers
// it), which no N-API call can prevent: do not transfer a buffer while an op
// that uses it is in flight.
#pragma once

#include <napi.h>

#include <cstddef>
#include <string>

#include "core/dtype.h"

namespace mics::napi {

struct HostBytes {
  char* data = nullptr;
  std::size_t bytes = 0;
  napi_typedarray_type type = napi_uint8_array;
};

// Throws mics::Error(kInvalidArgument) naming `role` when value is no TypedArray
// over a plain, attached, fixed-length ArrayBuffer.
HostBytes HostBytesOf(Napi::Env env, const Napi::Value& value, const std::string& role);

// The TypedArray that carries `dtype` on the host (bf16 / f16: their bits in a Uint16Array).
napi_typedarray_type ArrayTypeFor(DType dtype);

// "Float32Array", ... for error messages.
const char* ArrayTypeName(napi_typedarray_type type);

}  // namespace mics::napi
