// Hyper-parameter checks shared by the AdamW and SGD launchers (PyTorch's rules).
#pragma once

#include <cmath>
#include <string>

#include "cuda/kernel_args.h"

namespace mics::cuda {

inline void RequireFiniteAtLeast(const KernelArgs& args, const char* name, double value, double lo) {
  if (!std::isfinite(value) || value < lo) {
    args.Fail(std::string(name) + " = " + std::to_string(value) + " is not valid: need a finite value >= " +
              std::to_string(lo));
  }
}

inline void RequireUnitInterval(const KernelArgs& args, const char* name, double value) {
  if (!(value >= 0.0 && value < 1.0)) {
    args.Fail(std::string(name) + " = " + std::to_string(value) + " is not valid: need 0 <= " + name + " < 1");
  }
}

inline void RequireStep(const KernelArgs& args, long long step) {
  if (step < 1) args.Fail("step = " + std::to_string(step) + " is not valid: steps count from 1");
}

}  // namespace mics::cuda
