#include "cuda/kernel_args.h"

#include "core/error.h"
#include "cuda/cuda_stream.h"
#include "cuda/device_tensor.h"

namespace mics::cuda {

void KernelArgs::Fail(const std::string& message) const {
  throw Error(ErrorCode::kInvalidArgument, std::string(op_) + ": " + message);
}

const KernelArgs& KernelArgs::Tensor(const DeviceTensor& t, const char* role, const CudaStream& stream) const {
  if (!t.defined()) Fail(std::string(role) + " is undefined (released or never allocated)");
  if (t.device() != stream.device()) {
    Fail(std::string(role) + " is on device " + std::to_string(t.device()) + " but the stream is on device " +
         std::to_string(stream.device()));
  }
  return *this;
}

const KernelArgs& KernelArgs::DTypeIn(const DeviceTensor& t, const char* role,
                                      std::initializer_list<DType> allowed) const {
  std::string names;
  std::size_t i = 0;
  for (DType d : allowed) {
    if (d == t.dtype()) return *this;
    if (i > 0) names += (i + 1 == allowed.size()) ? " or " : ", ";
    names += DTypeName(d);
    ++i;
  }
  Fail(std::string(role) + " has dtype " + DTypeName(t.dtype()) + " but must be " + names);
}

const KernelArgs& KernelArgs::SameLength(const DeviceTensor& a, const char* roleA, const DeviceTensor& b,
                                         const char* roleB) const {
  if (a.length() != b.length()) {
    Fail(std::string("lengths differ: ") + roleA + " has " + std::to_string(a.length()) + " elements, " + roleB +
         " has " + std::to_string(b.length()));
  }
  return *this;
}

const KernelArgs& KernelArgs::MinLength(const DeviceTensor& t, const char* role, std::size_t length) const {
  if (t.length() < length) {
    Fail(std::string(role) + " has " + std::to_string(t.length()) + " elements but needs at least " +
         std::to_string(length));
  }
  return *this;
}

const KernelArgs& KernelArgs::Disjoint(const DeviceTensor& a, const char* roleA, const DeviceTensor& b,
                                       const char* roleB) const {
  if (a.Overlaps(b)) Fail(std::string(roleA) + " and " + roleB + " overlap in memory");
  return *this;
}

const KernelArgs& KernelArgs::SameOrDisjoint(const DeviceTensor& a, const char* roleA, const DeviceTensor& b,
                                             const char* roleB) const {
  if (a.Overlaps(b) && !a.SameRange(b)) Fail(std::string(roleA) + " and " + roleB + " partly overlap in memory");
  return *this;
}

}  // namespace mics::cuda
