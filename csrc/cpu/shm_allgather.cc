#include <cstring>

#include "cpu/shm_algorithms.h"

namespace mics::shm {

void AllGather(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  char* recv = static_cast<char*>(c.recv);
  group.BeginOp(sig, c.send, c.recv, deadline);
  // Start with the next rank and wrap, so ranks do not all read rank 0 at once.
  for (int i = 1; i < group.size(); ++i) {
    int peer = (group.rank() + i) % group.size();
    group.Read(peer, group.PeerSend(peer), recv + peer * bytes, bytes);
  }
  char* mine = recv + group.rank() * bytes;
  if (mine != c.send && bytes > 0) std::memcpy(mine, c.send, bytes);
  group.EndOp(deadline);
}

}  // namespace mics::shm
