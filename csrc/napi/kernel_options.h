// Reading the optimizer kernels' options objects ({lr, beta1, ..., step}) at the JS
// edge, for the CPU kernels (host_kernels.cc) and the CUDA ones (device_tensor_wrap.cc)
// alike: torch's names, its defaults for absent ones, and named errors
// (MICS_INVALID_ARGUMENT, "<op>: <key> must be a number", ...). The values' ranges are
// checked by kernels::CheckAdamWOptions / CheckSgdOptions.
#pragma once

#include <napi.h>

#include <string>

#include "kernels/optimizer_scalars.h"

namespace mics::napi {

// value as a number; throws "<what> must be a number" otherwise.
double NumberArg(const Napi::Value& value, const std::string& what);

// The options object a kernel call takes as its only argument.
Napi::Object OptionsArg(const Napi::CallbackInfo& info, const std::string& op);

// lr, beta1, beta2, eps, weightDecay, gradScale (absent: torch's defaults) and step (required).
kernels::AdamWOptions AdamWOptionsOf(const Napi::Object& options, const std::string& op);

// lr, momentum, dampening, weightDecay, gradScale, nesterov (absent: torch's defaults) and step (required).
kernels::SgdOptions SgdOptionsOf(const Napi::Object& options, const std::string& op);

}  // namespace mics::napi
