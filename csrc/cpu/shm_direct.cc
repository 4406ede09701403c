#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/shm_algorithms.h"
#include "kernels/copy.h"

namespace mics::shm {

bool BeginStagedOrDirect(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline,
                         const std::function<void()>& stageFirstRound) {
  std::size_t sendBytes = c.count * ElementSize(c.dtype);
  if (c.type == CollectiveType::kReduceScatter) sendBytes *= static_cast<std::size_t>(group.size());
  // With direct reads off (MICS_SHM_DIRECT=0) we post no view, so no op of ours runs direct.
  const RegisteredView send =
      ShmGroup::DirectEnabled() ? HostRegionRegistry::Instance().Find(c.send, sendBytes) : RegisteredView{};
  const bool registered = send.valid();
  if (!registered) stageFirstRound();
  group.BeginOp(sig, deadline, send);
  if (group.AllRegistered()) {
    group.ResolvePeerInputs(c.send, sendBytes);
    return true;
  }
  if (group.AnyRegistered()) {
    // Mixed: the registered ranks stage late, and one more sync publishes it.
    if (registered) stageFirstRound();
    group.Arrive();
    group.WaitAll(deadline);
  }
  return false;
}

namespace direct {

// Every rank copies every peer's input straight into its output: one copy per
// byte, no rounds. In place our input is our own slot of the output, which no
// write touches.
void AllGather(ShmGroup& group, const Collective& c, Deadline deadline) {
  const int n = group.size(), rank = group.rank();
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  char* recv = static_cast<char*>(c.recv);
  for (int i = 1; i < n && bytes > 0; ++i) {
    const int peer = (rank + i) % n;  // spread the readers over the peers
    kernels::CopyToOutput(recv + peer * bytes, group.PeerSend(peer), bytes);
  }
  if (c.send != recv + rank * bytes && bytes > 0) kernels::CopyToOutput(recv + rank * bytes, c.send, bytes);
  group.EndOp(deadline);  // nobody changes its input while a peer may still read it
}

// Rank r reduces block r of every rank's input, in rank order, into its output.
void ReduceScatter(ShmGroup& group, const Collective& c, Deadline deadline) {
  const int n = group.size(), rank = group.rank();
  const std::size_t blockBytes = c.count * ElementSize(c.dtype);
  std::vector<const char*> sources(n);
  for (int r = 0; r < n; ++r) sources[r] = group.PeerSend(r) + rank * blockBytes;
  if (c.count > 0) ReduceSources(c, sources.data(), n, c.count, c.recv);
  group.EndOp(deadline);
}

// Round k: rank r reduces piece k of slice r of every rank's input into its
// staging buffer k % 2 (cached, so peers read it from cache and the output
// takes no read-for-ownership), one sync, then every rank streams piece k of
// every slice from the owners' staging buffers into its output. A staging
// buffer is rewritten two rounds later, after the next sync proved every peer
// done with it. In place, piece k of any slice of our buffer is overwritten
// only after sync k, when its reducer has read it, and no round reads it again.
void AllReduce(ShmGroup& group, const Collective& c, Deadline deadline) {
  const int n = group.size(), rank = group.rank();
  const std::size_t elem = ElementSize(c.dtype);
  StagedSlices plan(group, c.count, elem, /*slots=*/1);
  char* recv = static_cast<char*>(c.recv);
  std::vector<const char*> sources(n);
  for (std::size_t k = 0; k < plan.rounds(); ++k) {
    const int buffer = static_cast<int>(k % 2);
    std::size_t first = 0;
    const std::size_t length = plan.Piece(rank, k, &first);
    if (length > 0) {
      for (int r = 0; r < n; ++r) sources[r] = group.PeerSend(r) + first * elem;
      ReduceSources(c, sources.data(), n, length, group.Staging(rank, buffer));
    }
    group.Arrive();
    group.WaitAll(deadline);
    for (int i = 0; i < n; ++i) {
      const int owner = (rank + i) % n;
      const std::size_t ownerLength = plan.Piece(owner, k, &first);
      if (ownerLength > 0) kernels::CopyToOutput(recv + first * elem, group.Staging(owner, buffer), ownerLength * elem);
    }
  }
  group.EndOp(deadline);
}

}  // namespace direct

}  // namespace mics::shm
