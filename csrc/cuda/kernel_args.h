// Argument checks shared by the kernel launchers (plain C++). Each throws
// Error(kInvalidArgument) with "<op>: <role> ..." naming what is valid.
#pragma once

#include <initializer_list>
#include <string>

#include "core/dtype.h"

namespace mics::cuda {

class CudaStream;
class DeviceTensor;

class KernelArgs {
 public:
  explicit KernelArgs(const char* op) : op_(op) {}

  // Defined, on the stream's device.
  const KernelArgs& Tensor(const DeviceTensor& t, const char* role, const CudaStream& stream) const;
  const KernelArgs& DTypeIn(const DeviceTensor& t, const char* role, std::initializer_list<DType> allowed) const;
  const KernelArgs& SameLength(const DeviceTensor& a, const char* roleA, const DeviceTensor& b,
                               const char* roleB) const;
  const KernelArgs& MinLength(const DeviceTensor& t, const char* role, std::size_t length) const;
  // a and b share no bytes.
  const KernelArgs& Disjoint(const DeviceTensor& a, const char* roleA, const DeviceTensor& b,
                             const char* roleB) const;
  // a and b are either the very same range or share no bytes.
  const KernelArgs& SameOrDisjoint(const DeviceTensor& a, const char* roleA, const DeviceTensor& b,
                                   const char* roleB) const;
  [[noreturn]] void Fail(const std::string& message) const;

 private:
  const char* op_;
};

}  // namespace mics::cuda
