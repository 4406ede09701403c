// allocHost(byteLength): an ArrayBuffer over a HostRegion, which same-node peers
// read in place during collectives. Freed when the ArrayBuffer is collected.
#pragma once

#include <napi.h>

namespace mics::napi {

void InitHostMemory(Napi::Env env, Napi::Object exports);

}  // namespace mics::napi
