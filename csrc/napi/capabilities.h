// version(), buildInfo() and capabilities(): what this addon is and can use here.
#pragma once

#include <napi.h>

namespace mics::napi {

void InitCapabilities(Napi::Env env, Napi::Object exports);

}  // namespace mics::napi
