#include "napi/host_buffer.h"

#include "core/error.h"

namespace mics::napi {

namespace {

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

// A JS exception left by a getter is replaced by our error (which names the role).
void ClearPending(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
}

// ArrayBuffer.prototype's `resizable` getter, looked up once per environment and
// called on each buffer: an own `resizable` property on the buffer (a plain value or
// a getter the caller defined) cannot hide what the engine knows. nullptr where it
// cannot be found (an engine without resizable ArrayBuffers).
napi_value ResizableGetter(napi_env env) {
  struct Getter {
    napi_env env = nullptr;
    napi_ref ref = nullptr;
  };
  thread_local Getter getter;
  napi_value fn = nullptr;
  if (getter.env == env && napi_get_reference_value(env, getter.ref, &fn) == napi_ok && fn != nullptr) return fn;
  napi_value global = nullptr, object = nullptr, describe = nullptr, arrayBuffer = nullptr, prototype = nullptr;
  napi_value name = nullptr, descriptor = nullptr;
  napi_valuetype type = napi_undefined;
  bool found = napi_get_global(env, &global) == napi_ok && napi_get_named_property(env, global, "Object", &object) == napi_ok &&
               napi_get_named_property(env, object, "getOwnPropertyDescriptor", &describe) == napi_ok &&
               napi_get_named_property(env, global, "ArrayBuffer", &arrayBuffer) == napi_ok &&
               napi_get_named_property(env, arrayBuffer, "prototype", &prototype) == napi_ok &&
               napi_create_string_utf8(env, "resizable", NAPI_AUTO_LENGTH, &name) == napi_ok;
  if (found) {
    napi_value args[2] = {prototype, name};
    found = napi_call_function(env, object, describe, 2, args, &descriptor) == napi_ok &&
            napi_typeof(env, descriptor, &type) == napi_ok && type == napi_object &&
            napi_get_named_property(env, descriptor, "get", &fn) == napi_ok && napi_typeof(env, fn, &type) == napi_ok &&
            type == napi_function;
  }
  ClearPending(env);
  if (!found) return nullptr;
  // Never deleted: one small reference per environment, freed with it.
  napi_ref ref = nullptr;
  if (napi_create_reference(env, fn, 1, &ref) == napi_ok) getter = Getter{env, ref};
  return fn;
}

// Marks an ArrayBuffer this module found fixed-length. Resizability is fixed when an
// ArrayBuffer is made, so one check per buffer suffices: the mark (a private
// property) costs far less to read than the `resizable` getter on every op.
constexpr napi_type_tag kFixedLengthTag = {0x6d6963735f666978ULL, 0x65642d6c656e6774ULL};

// Whether `buffer` (an ArrayBuffer) is resizable; false where the engine has none.
bool IsResizable(napi_env env, napi_value buffer) {
  bool known = false;
  if (napi_check_object_type_tag(env, buffer, &kFixedLengthTag, &known) == napi_ok && known) return false;
  napi_value getter = ResizableGetter(env);
  napi_value resizable = nullptr;
  bool isResizable = false;
  // Without the prototype's getter, the buffer's own property (undefined, so false,
  // where ArrayBuffers cannot be resizable); a throwing getter counts as false.
  if ((getter != nullptr ? napi_call_function(env, buffer, getter, 0, nullptr, &resizable)
                         : napi_get_named_property(env, buffer, "resizable", &resizable)) == napi_ok) {
    napi_get_value_bool(env, resizable, &isResizable);
  }
  ClearPending(env);
  // Best effort: a buffer another module tagged first is simply checked every time.
  if (!isResizable) napi_type_tag_object(env, buffer, &kFixedLengthTag);
  ClearPending(env);
  return isResizable;
}

}  // namespace

HostBytes HostBytesOf(Napi::Env env, const Napi::Value& value, const std::string& role) {
  if (value.IsEmpty() || !value.IsTypedArray()) throw Invalid(role + " must be a TypedArray");
  HostBytes out;
  std::size_t length = 0;
  std::size_t byteOffset = 0;
  void* data = nullptr;
  napi_value buffer = nullptr;
  if (napi_get_typedarray_info(env, value, &out.type, &length, &data, &buffer, &byteOffset) != napi_ok ||
      buffer == nullptr) {
    ClearPending(env);
    throw Invalid(role + " must be a TypedArray");
  }
  bool plain = false;
  if (napi_is_arraybuffer(env, buffer, &plain) != napi_ok || !plain) {
    throw Invalid(role + " is backed by a SharedArrayBuffer, which is not supported: use a TypedArray over an "
                         "ArrayBuffer (allocHost(), or new Float32Array(n) and the like)");
  }
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, buffer, &detached) != napi_ok || detached) {
    throw Invalid(role + " is a view of a detached ArrayBuffer (it was transferred): it has no memory to use");
  }
  if (IsResizable(env, buffer)) {
    throw Invalid(role + " is a view of a resizable ArrayBuffer, which is not supported (shrinking it during an "
                         "op would pull its memory away): use a fixed-length ArrayBuffer");
  }
  static const std::size_t kElementBytes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};  // napi_typedarray_type order
  const std::size_t element = static_cast<std::size_t>(out.type) < sizeof(kElementBytes) / sizeof(kElementBytes[0])
                                  ? kElementBytes[out.type]
                                  : 1;
  out.data = static_cast<char*>(data);  // napi_get_typedarray_info already adds byteOffset
  out.bytes = length * element;
  return out;
}

napi_typedarray_type ArrayTypeFor(DType dtype) {
  switch (dtype) {
    case DType::kF32: return napi_float32_array;
    case DType::kF64: return napi_float64_array;
    case DType::kF16:
    case DType::kBF16: return napi_uint16_array;
    case DType::kI8: return napi_int8_array;
    case DType::kU8: return napi_uint8_array;
    case DType::kI32: return napi_int32_array;
    case DType::kI64: return napi_bigint64_array;
  }
  return napi_uint8_array;
}

const char* ArrayTypeName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

}  // namespace mics::napi
