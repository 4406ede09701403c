#include <algorithm>
#include <cstring>

#include "cpu/shm_algorithms.h"
#include "kernels/copy.h"

namespace mics::shm {

// Root copies the next piece into one of its staging buffers, one sync, every
// other rank copies it out; double buffered like the all-gather.
void Broadcast(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  const std::size_t piece = group.stagingBytes();
  const bool root = group.rank() == c.root;
  const char* send = static_cast<const char*>(c.send);
  char* recv = static_cast<char*>(c.recv);
  const std::size_t rounds = std::max<std::size_t>(1, (bytes + piece - 1) / piece);
  for (std::size_t k = 0; k < rounds; ++k) {
    const std::size_t offset = k * piece, length = std::min(piece, bytes - offset);
    const int buffer = static_cast<int>(k % 2);
    if (root && length > 0) std::memcpy(group.Staging(c.root, buffer), send + offset, length);
    if (k == 0) {
      group.BeginOp(sig, deadline);
    } else {
      group.Arrive();
      group.WaitAll(deadline);
    }
    if (length == 0) continue;
    if (!root) kernels::CopyToOutput(recv + offset, group.Staging(c.root, buffer), length);
    else if (recv != send) kernels::CopyToOutput(recv + offset, send + offset, length);
  }
  group.EndOp(deadline);
}

}  // namespace mics::shm
