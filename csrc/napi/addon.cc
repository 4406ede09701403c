// The addon's entry point: each napi/ module registers its exports here.
#include <napi.h>

#include "napi/capabilities.h"
#include "napi/communicator_wrap.h"
#include "napi/device_tensor_wrap.h"
#include "napi/errors.h"
#include "napi/host_kernels.h"
#include "napi/host_memory.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  mics::napi::InitErrors(env, exports);
  mics::napi::InitCapabilities(env, exports);
  mics::napi::CommunicatorWrap::Init(env, exports);
  mics::napi::InitHostMemory(env, exports);
  mics::napi::InitDeviceTensor(env, exports);  // registers nothing without CUDA
  mics::napi::InitHostKernels(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(mics, Init)
