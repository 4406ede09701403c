// Errors at the JS edge. Every error the addon raises is a MicsError (the class
// of lib/core/errors.ts) with a stable `code` and, where known, rank/group/op/peer.
//
// The class is handed over once per environment (main thread, each worker) by the
// loader: addon.setErrorClass(MicsError). A direct user of the addon who never
// calls it gets plain Errors with the same `code` and fields.
//
// Errors are thrown with napi_throw, never as C++ exceptions through
// node-addon-api: when the environment is terminating (worker.terminate()) a
// throw fails, and node-addon-api turns that failure into a C++ exception out of
// its C callback, which terminates the whole process.
#pragma once

#include <napi.h>

#include <exception>
#include <new>
#include <type_traits>

#include "core/error.h"

namespace mics::napi {

// Registers setErrorClass(cls) on exports.
void InitErrors(Napi::Env env, Napi::Object exports);

// The JS error for `error`: new MicsError(message, code, {rank, group, op, peer}),
// or a plain Error with the same fields. nullptr when nothing can be created (the
// environment is going away). Never throws.
napi_value MakeJsError(napi_env env, const Error& error) noexcept;
// A JS error thrown by Node-API or node-addon-api itself (a type check failed, a
// user getter threw) as a MicsError: passed through when it already is one, else
// wrapped with the original as `cause` (TypeError/RangeError:
// MICS_INVALID_ARGUMENT, anything else MICS_INTERNAL). Never throws.
napi_value MakeJsError(napi_env env, const Napi::Error& error) noexcept;
// MakeJsError as a Napi::Error (empty when nothing could be created), for code that
// rejects a Napi::Promise::Deferred with it. Never throws.
Napi::Error ToJsError(Napi::Env env, const Error& error) noexcept;
// napi_throw(error) unless error is nullptr; a failed throw is ignored.
void ThrowJsError(napi_env env, napi_value error) noexcept;

// Runs fn at a JS entry point (every function, method, accessor and constructor the
// addon exposes). Whatever it throws is thrown in JS as a MicsError and Guard
// returns an empty value; no C++ exception leaves it.
template <typename Fn>
auto Guard(napi_env env, Fn&& fn) noexcept -> decltype(fn()) {
  using Result = decltype(fn());
  napi_value error = nullptr;
  try {
    return fn();
  } catch (const Napi::Error& e) {
    error = MakeJsError(env, e);
  } catch (const Error& e) {
    error = MakeJsError(env, e);
  } catch (const std::bad_alloc&) {
    static const Error outOfMemory(ErrorCode::kSystem, "out of memory");
    error = MakeJsError(env, outOfMemory);
  } catch (const std::exception& e) {
    try {
      error = MakeJsError(env, Error(ErrorCode::kInternal, e.what()));
    } catch (...) {
    }
  } catch (...) {
    static const Error unknown(ErrorCode::kInternal, "unknown native exception");
    error = MakeJsError(env, unknown);
  }
  ThrowJsError(env, error);
  if constexpr (!std::is_void_v<Result>) return Result();
}

// The usual argument error: MICS_INVALID_ARGUMENT with `message`.
inline Error InvalidArgument(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

}  // namespace mics::napi
