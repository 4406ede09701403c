// Element types and reduction operators understood by every backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace mics {

enum class DType : uint8_t { kF32, kF64, kF16, kBF16, kI8, kU8, kI32, kI64 };
enum class ReduceOp : uint8_t { kSum, kAvg, kMax, kMin, kProd };

std::size_t ElementSize(DType dtype);
const char* DTypeName(DType dtype);     // "f32", ...
const char* ReduceOpName(ReduceOp op);  // "sum", ...

// Parse the names above; throw Error(kInvalidArgument) naming the value and the valid ones.
DType ParseDType(const std::string& name);
ReduceOp ParseReduceOp(const std::string& name);

// Half types reduce in f32 (accuracy); every other type reduces in itself.
DType AccumulatorType(DType dtype);

}  // namespace mics
