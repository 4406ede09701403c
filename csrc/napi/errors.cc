#include "napi/errors.h"

namespace mics::napi {

Napi::Error ToJsError(Napi::Env env, const Error& error) {
  Napi::Error js = Napi::Error::New(env, error.what());
  Napi::Object obj = js.Value();
  obj.Set("code", ErrorCodeName(error.code()));
  if (error.rank() >= 0) obj.Set("rank", error.rank());
  if (!error.group().empty()) obj.Set("group", error.group());
  if (!error.op().empty()) obj.Set("op", error.op());
  if (error.peer() >= 0) obj.Set("peer", error.peer());
  return js;
}

}  // namespace mics::napi
