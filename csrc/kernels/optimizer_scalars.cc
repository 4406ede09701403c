#include "kernels/optimizer_scalars.h"

#include <cmath>

#include "core/error.h"

namespace mics::kernels {

namespace {

[[noreturn]] void Fail(const std::string& op, const std::string& message) {
  throw Error(ErrorCode::kInvalidArgument, op + ": " + message);
}

void RequireFiniteAtLeast(const std::string& op, const char* name, double value, double lo) {
  if (!std::isfinite(value) || value < lo) {
    Fail(op, std::string(name) + " = " + std::to_string(value) + " is not valid: need a finite value >= " +
                 std::to_string(lo));
  }
}

void RequireUnitInterval(const std::string& op, const char* name, double value) {
  if (!(value >= 0.0 && value < 1.0)) {
    Fail(op, std::string(name) + " = " + std::to_string(value) + " is not valid: need 0 <= " + name + " < 1");
  }
}

void RequireStep(const std::string& op, int64_t step) {
  if (step < 1) Fail(op, "step = " + std::to_string(step) + " is not valid: steps count from 1");
}

void RequireFinite(const std::string& op, const char* name, double value) {
  if (!std::isfinite(value)) Fail(op, std::string(name) + " = " + std::to_string(value) + " is not finite");
}

}  // namespace

void CheckAdamWOptions(const AdamWOptions& o, const std::string& op) {
  RequireFiniteAtLeast(op, "lr", o.lr, 0.0);
  RequireFiniteAtLeast(op, "eps", o.eps, 0.0);
  RequireFiniteAtLeast(op, "weightDecay", o.weightDecay, 0.0);
  RequireUnitInterval(op, "beta1", o.beta1);
  RequireUnitInterval(op, "beta2", o.beta2);
  RequireStep(op, o.step);
  RequireFinite(op, "gradScale", o.gradScale);
}

void CheckSgdOptions(const SgdOptions& o, const std::string& op) {
  RequireFiniteAtLeast(op, "lr", o.lr, 0.0);
  RequireFiniteAtLeast(op, "momentum", o.momentum, 0.0);
  RequireFiniteAtLeast(op, "weightDecay", o.weightDecay, 0.0);
  RequireFinite(op, "dampening", o.dampening);
  RequireStep(op, o.step);
  RequireFinite(op, "gradScale", o.gradScale);
  if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0)) {
    Fail(op, "nesterov momentum requires a momentum > 0 and zero dampening");
  }
}

AdamWScalars MakeAdamWScalars(const AdamWOptions& o) {
  const double step = static_cast<double>(o.step);
  const double bc1 = 1.0 - std::pow(o.beta1, step);
  const double bc2 = 1.0 - std::pow(o.beta2, step);
  AdamWScalars s;
  s.gradScale = static_cast<float>(o.gradScale);
  s.scaleGrad = o.gradScale != 1.0;
  s.decay = static_cast<float>(1.0 - o.lr * o.weightDecay);
  s.decoupledDecay = o.weightDecay != 0.0;
  s.lerpWeight = static_cast<float>(1.0 - o.beta1);
  s.lerpFromStart = std::fabs(s.lerpWeight) < 0.5f;
  s.oneMinusLerpWeight = 1.0f - s.lerpWeight;
  s.beta2 = static_cast<float>(o.beta2);
  s.oneMinusBeta2 = static_cast<float>(1.0 - o.beta2);
  s.bc2Sqrt = static_cast<float>(std::sqrt(bc2));
  s.eps = static_cast<float>(o.eps);
  s.negStepSize = static_cast<float>(-(o.lr / bc1));
  return s;
}

SgdScalars MakeSgdScalars(const SgdOptions& o) {
  SgdScalars s;
  s.gradScale = static_cast<float>(o.gradScale);
  s.scaleGrad = o.gradScale != 1.0;
  s.weightDecay = static_cast<float>(o.weightDecay);
  s.hasWeightDecay = o.weightDecay != 0.0;
  s.momentum = static_cast<float>(o.momentum);
  s.hasMomentum = o.momentum != 0.0;
  s.oneMinusDampening = static_cast<float>(1.0 - o.dampening);
  s.nesterov = o.nesterov;
  s.firstStep = o.step == 1;
  s.negLr = static_cast<float>(-o.lr);
  return s;
}

}  // namespace mics::kernels
