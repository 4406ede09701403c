// Bulk copies for the CPU algorithms. Large copies into a destination that is not
// read again soon (a collective's output) use non-temporal stores where the CPU
// has AVX2: they skip the read-for-ownership of the destination and leave the
// shared cache to the staging buffers, which matters on memory-bound machines.
#pragma once

#include <cstddef>

namespace mics::kernels {

// Like memcpy; streams to memory when n is large enough to be worth it.
void CopyToOutput(void* dst, const void* src, std::size_t n);

}  // namespace mics::kernels
