#include "napi/kernel_options.h"

#include <cmath>
#include <cstdint>

#include "core/error.h"

namespace mics::napi {

namespace {

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

double OptNumber(const Napi::Object& o, const char* key, double fallback, const std::string& op) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  return NumberArg(v, op + ": " + key);
}

int64_t StepProp(const Napi::Object& o, const std::string& op) {
  Napi::Value v = o.Get("step");
  if (v.IsUndefined()) throw Invalid(op + ": step is required (1 for the first step)");
  const double d = NumberArg(v, op + ": step");
  if (d != std::floor(d) || d < 1 || d > 9007199254740991.0) {
    throw Invalid(op + ": step = " + v.ToString().Utf8Value() + " is not valid: steps are integers from 1");
  }
  return static_cast<int64_t>(d);
}

}  // namespace

double NumberArg(const Napi::Value& value, const std::string& what) {
  if (!value.IsNumber()) throw Invalid(what + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

Napi::Object OptionsArg(const Napi::CallbackInfo& info, const std::string& op) {
  if (info.Length() < 1 || !info[0].IsObject()) throw Invalid(op + ": an options object is required");
  return info[0].As<Napi::Object>();
}

kernels::AdamWOptions AdamWOptionsOf(const Napi::Object& o, const std::string& op) {
  kernels::AdamWOptions options;
  options.lr = OptNumber(o, "lr", options.lr, op);
  options.beta1 = OptNumber(o, "beta1", options.beta1, op);
  options.beta2 = OptNumber(o, "beta2", options.beta2, op);
  options.eps = OptNumber(o, "eps", options.eps, op);
  options.weightDecay = OptNumber(o, "weightDecay", options.weightDecay, op);
  options.gradScale = OptNumber(o, "gradScale", options.gradScale, op);
  options.step = StepProp(o, op);
  return options;
}

kernels::SgdOptions SgdOptionsOf(const Napi::Object& o, const std::string& op) {
  kernels::SgdOptions options;
  options.lr = OptNumber(o, "lr", options.lr, op);
  options.momentum = OptNumber(o, "momentum", options.momentum, op);
  options.dampening = OptNumber(o, "dampening", options.dampening, op);
  options.weightDecay = OptNumber(o, "weightDecay", options.weightDecay, op);
  options.gradScale = OptNumber(o, "gradScale", options.gradScale, op);
  options.nesterov = o.Get("nesterov").ToBoolean().Value();
  options.step = StepProp(o, op);
  return options;
}

}  // namespace mics::napi
