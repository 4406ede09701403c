#include "napi/errors.h"

#include <mutex>
#include <string>
#include <unordered_map>

namespace mics::napi {

namespace {

// The MicsError class of each environment. Not the env's instance data: that single
// slot belongs to no one module (see device_tensor_wrap.cc).
std::mutex classMutex;
std::unordered_map<napi_env, napi_ref>& Classes() {
  static auto* classes = new std::unordered_map<napi_env, napi_ref>();  // never freed: hooks run at exit
  return *classes;
}

void ForgetClass(void* arg) noexcept {  // env cleanup hook: nothing may unwind into Node
  napi_env env = static_cast<napi_env>(arg);
  napi_ref ref = nullptr;
  try {
    std::lock_guard<std::mutex> lock(classMutex);
    auto it = Classes().find(env);
    if (it == Classes().end()) return;
    ref = it->second;
    Classes().erase(it);
  } catch (...) {
    return;
  }
  napi_delete_reference(env, ref);
}

napi_value ErrorClass(napi_env env) {
  napi_ref ref = nullptr;
  {
    std::lock_guard<std::mutex> lock(classMutex);
    auto it = Classes().find(env);
    if (it == Classes().end()) return nullptr;
    ref = it->second;
  }
  napi_value cls = nullptr;
  if (napi_get_reference_value(env, ref, &cls) != napi_ok) return nullptr;
  return cls;
}

napi_value String(napi_env env, const std::string& text) {
  napi_value v = nullptr;
  napi_create_string_utf8(env, text.data(), text.size(), &v);
  return v;
}

napi_value Int(napi_env env, int n) {
  napi_value v = nullptr;
  napi_create_int32(env, n, &v);
  return v;
}

void SetIf(napi_env env, napi_value object, const char* key, napi_value value) {
  if (object != nullptr && value != nullptr) napi_set_named_property(env, object, key, value);
}

// Clears a JS exception left by a failed call (so the fallback can be built and thrown).
void ClearPending(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
}

// new MicsError(message, code, details), or a plain Error with the same fields.
napi_value MakeError(napi_env env, const std::string& message, const char* code, napi_value details) {
  napi_value cls = ErrorClass(env);
  if (cls != nullptr) {
    napi_value argv[3] = {String(env, message), String(env, code), details};
    napi_value result = nullptr;
    if (argv[0] != nullptr && argv[1] != nullptr && argv[2] != nullptr &&
        napi_new_instance(env, cls, 3, argv, &result) == napi_ok) {
      return result;
    }
    ClearPending(env);
  }
  napi_value error = nullptr;
  if (napi_create_error(env, String(env, code), String(env, message), &error) != napi_ok) return nullptr;
  // The fields MicsError's constructor would have copied from details.
  for (const char* key : {"rank", "group", "op", "peer", "cause"}) {
    napi_value v = nullptr;
    bool has = false;
    if (details != nullptr && napi_has_named_property(env, details, key, &has) == napi_ok && has &&
        napi_get_named_property(env, details, key, &v) == napi_ok) {
      SetIf(env, error, key, v);
    }
  }
  return error;
}

napi_value Details(napi_env env) {
  napi_value details = nullptr;
  napi_create_object(env, &details);
  return details;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsFunction()) {
      throw InvalidArgument("setErrorClass(cls): cls must be the MicsError class (a function)");
    }
    napi_ref ref = nullptr;
    if (napi_create_reference(env, info[0], 1, &ref) != napi_ok) {
      throw Error(ErrorCode::kInternal, "setErrorClass: could not keep a reference");
    }
    napi_ref old = nullptr;
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(classMutex);
      auto [it, inserted] = Classes().emplace(env, ref);
      if (!inserted) {
        old = it->second;
        it->second = ref;
      }
      first = inserted;
    }
    if (old != nullptr) napi_delete_reference(env, old);
    if (first) napi_add_env_cleanup_hook(env, ForgetClass, env);
    return info.Env().Undefined();
  });
}

}  // namespace

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
}

napi_value MakeJsError(napi_env env, const Error& error) noexcept {
  try {
    napi_value details = Details(env);
    if (error.rank() >= 0) SetIf(env, details, "rank", Int(env, error.rank()));
    if (!error.group().empty()) SetIf(env, details, "group", String(env, error.group()));
    if (!error.op().empty()) SetIf(env, details, "op", String(env, error.op()));
    if (error.peer() >= 0) SetIf(env, details, "peer", Int(env, error.peer()));
    return MakeError(env, error.what(), ErrorCodeName(error.code()), details);
  } catch (...) {
    return nullptr;
  }
}

napi_value MakeJsError(napi_env env, const Napi::Error& error) noexcept {
  try {
    napi_value original = error.Value();
    napi_value cls = ErrorClass(env);
    bool already = false;
    if (original != nullptr && cls != nullptr && napi_instanceof(env, original, cls, &already) != napi_ok) {
      ClearPending(env);
    }
    if (already) return original;
    std::string name;
    napi_valuetype type = napi_undefined;
    if (original != nullptr && napi_typeof(env, original, &type) == napi_ok && type == napi_object) {
      napi_value v = nullptr;
      char buffer[32] = {0};
      std::size_t length = 0;
      if (napi_get_named_property(env, original, "name", &v) == napi_ok &&
          napi_get_value_string_utf8(env, v, buffer, sizeof(buffer), &length) == napi_ok) {
        name.assign(buffer, length);
      }
      ClearPending(env);
    }
    const bool badArgument = name == "TypeError" || name == "RangeError";
    napi_value details = Details(env);
    SetIf(env, details, "cause", original);
    const std::string message = error.Message();
    return MakeError(env, message.empty() ? std::string("native call failed") : message,
                     badArgument ? "MICS_INVALID_ARGUMENT" : "MICS_INTERNAL", details);
  } catch (...) {
    return nullptr;
  }
}

Napi::Error ToJsError(Napi::Env env, const Error& error) noexcept {
  napi_value value = MakeJsError(env, error);
  try {
    return Napi::Error(env, value);
  } catch (...) {
    return Napi::Error();
  }
}

void ThrowJsError(napi_env env, napi_value error) noexcept {
  if (error != nullptr) napi_throw(env, error);
}

}  // namespace mics::napi
