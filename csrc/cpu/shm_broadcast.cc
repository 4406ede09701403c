#include <cstring>

#include "cpu/shm_algorithms.h"

namespace mics::shm {

void Broadcast(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  group.BeginOp(sig, c.send, c.recv, deadline);
  if (group.rank() == c.root) {
    if (c.recv != c.send && bytes > 0) std::memcpy(c.recv, c.send, bytes);
  } else if (bytes > 0) {
    group.Read(c.root, group.PeerSend(c.root), c.recv, bytes);
  }
  group.EndOp(deadline);
}

void Barrier(ShmGroup& group, const Signature& sig, Deadline deadline) {
  // The second sync is needed although no buffers are read: a rank must not post
  // its next op's signature while a slower peer still compares this one.
  group.BeginOp(sig, nullptr, nullptr, deadline);
  group.EndOp(deadline);
}

}  // namespace mics::shm
