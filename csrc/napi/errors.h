// mics::Error -> JavaScript Error with a stable `code` and the rank/group/op/peer.
#pragma once

#include <napi.h>

#include "core/error.h"

namespace mics::napi {

Napi::Error ToJsError(Napi::Env env, const Error& error);
// Runs fn; a mics::Error thrown inside becomes a thrown JS error.
template <typename Fn>
auto Translate(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw ToJsError(env, e);
  }
}

}  // namespace mics::napi
