// hostKernels: the CPU kernels of csrc/kernels (AdamW, SGD, accumulate, scale, cast,
// sum of squares, non-finite check, checksum) on host TypedArrays. Arguments are
// checked on the JS thread (a bad one rejects the returned Promise with
// MICS_INVALID_ARGUMENT naming it); the work runs on libuv's thread pool, and the
// arrays stay referenced until the Promise settles. lib/kernels/host.ts wraps them.
#pragma once

#include <napi.h>

namespace mics::napi {

void InitHostKernels(Napi::Env env, Napi::Object exports);

}  // namespace mics::napi
