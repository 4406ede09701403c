// A 64-bit checksum of a buffer's bytes, to check that replicas hold identical
// parameters: XXH64 with seed 0 (github.com/Cyan4973/xxHash, xxhash_spec.md), so any
// xxHash implementation (e.g. python's xxhash.xxh64(data).hexdigest()) gives the same value
// for the same bytes. Not cryptographic: it detects corruption and divergence, not
// tampering.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mics::kernels {

uint64_t Checksum(const void* data, std::size_t bytes);

}  // namespace mics::kernels
