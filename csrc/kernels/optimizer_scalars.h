// Optimizer hyper-parameters (torch's names and defaults), their checks, and the f32
// scalars the element loops use. Plain C++ with no CPU or CUDA specifics, so the CPU
// kernels (kernels/optimizer.cc) and the CUDA launchers can share one definition of
// the host-side arithmetic: the scalars are computed in double, as PyTorch computes
// them from Python floats, then rounded to float once. lib/cuda/reference.ts does the
// same; docs/cuda.md has the per-element formulas.
#pragma once

#include <cstdint>
#include <string>

namespace mics::kernels {

// torch.optim.AdamW (amsgrad=False, maximize=False).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 1e-2;
  int64_t step = 1;        // 1-based: the step being taken (PyTorch's state['step'] after += 1)
  double gradScale = 1.0;  // grads are multiplied by this first (unscaling, clipping); 1 = off
};

struct AdamWScalars {
  float gradScale;
  bool scaleGrad;        // gradScale != 1
  float decay;           // 1 - lr * weightDecay
  bool decoupledDecay;   // weightDecay != 0
  float lerpWeight;      // 1 - beta1
  bool lerpFromStart;    // |lerpWeight| < 0.5: ATen's lerp takes m + w * (g - m)
  float oneMinusLerpWeight;  // 1 - lerpWeight, in float (ATen's other branch)
  float beta2;
  float oneMinusBeta2;
  float bc2Sqrt;         // sqrt(1 - beta2^step)
  float eps;
  float negStepSize;     // -(lr / (1 - beta1^step))
};

// torch.optim.SGD (maximize=False).
struct SgdOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weightDecay = 0;
  bool nesterov = false;
  int64_t step = 1;  // 1-based; at step 1 the momentum buffer is initialised with the gradient
  double gradScale = 1.0;
};

struct SgdScalars {
  float gradScale;
  bool scaleGrad;
  float weightDecay;
  bool hasWeightDecay;
  float momentum;
  bool hasMomentum;
  float oneMinusDampening;
  bool nesterov;
  bool firstStep;
  float negLr;
};

// Throw Error(kInvalidArgument) "<op>: <name> = <value> is not valid: ..." on values
// PyTorch refuses (negative lr, beta outside [0, 1), step < 1, ...).
void CheckAdamWOptions(const AdamWOptions& options, const std::string& op);
void CheckSgdOptions(const SgdOptions& options, const std::string& op);

AdamWScalars MakeAdamWScalars(const AdamWOptions& options);
SgdScalars MakeSgdScalars(const SgdOptions& options);

}  // namespace mics::kernels
