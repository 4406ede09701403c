// Raw launcher behind DeviceTensor::Fill (plain C++; fill.cu implements it).
#pragma once

#include <cstddef>
#include <cstdint>

struct CUstream_st;

namespace mics::cuda {

// Writes `count` elements of `elementBytes` (1, 2, 4 or 8) bytes, each equal to the
// low bytes of `pattern`, at device address `dst`, on `stream`. Async.
void LaunchFillPattern(void* dst, std::size_t count, std::size_t elementBytes, uint64_t pattern,
                       CUstream_st* stream);

}  // namespace mics::cuda
