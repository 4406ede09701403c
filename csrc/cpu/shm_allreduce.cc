#include "cpu/shm_algorithms.h"

namespace mics::shm {

// Reduce-scatter then all-gather on balanced slices: rank r reduces slice r from
// everyone's send buffer into its own recv buffer; after a sync every rank reads
// the other reduced slices from their owners. In place is safe: in phase one
// peers read only slices that their owner does not write.
void AllReduce(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  const int n = group.size();
  const std::size_t elem = ElementSize(c.dtype);
  auto sliceStart = [&](int r) { return c.count * static_cast<std::size_t>(r) / n; };
  group.BeginOp(sig, c.send, c.recv, deadline);
  const std::size_t first = sliceStart(group.rank());
  char* recv = static_cast<char*>(c.recv);
  ReduceRange(group, c, first, sliceStart(group.rank() + 1) - first, recv + first * elem);
  group.Arrive();
  group.WaitAll(deadline);
  for (int i = 1; i < n; ++i) {
    int peer = (group.rank() + i) % n;
    std::size_t begin = sliceStart(peer), end = sliceStart(peer + 1);
    if (end > begin) group.Read(peer, group.PeerRecv(peer) + begin * elem, recv + begin * elem, (end - begin) * elem);
  }
  group.EndOp(deadline);
}

}  // namespace mics::shm
