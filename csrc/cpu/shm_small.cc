#include <cstring>
#include <vector>

#include "cpu/shm_algorithms.h"

namespace mics::shm {

// Small ops carry their data in the sender's small-op area of the op's parity
// (ShmGroup::Small): post data and signature, one sync, then every rank reads
// what it needs straight from the peers' areas. No staging rounds, no EndOp: a
// peer's area for this op is rewritten only at op seq + 2, which it starts after
// every rank arrived in op seq + 1, i.e. after every rank finished reading this one.

std::size_t SmallBytes(const ShmGroup& group, const Collective& c) {
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  switch (c.type) {
    case CollectiveType::kReduceScatter: return bytes * static_cast<std::size_t>(group.size());  // the whole input
    case CollectiveType::kBarrier: return 0;
    default: return bytes;
  }
}

bool IsSmall(const ShmGroup& group, const Collective& c) { return SmallBytes(group, c) <= ShmGroup::kSmallBytes; }

void StartSmall(ShmGroup& group, const Collective& c, const Signature& sig) {
  group.EnsureNotAborted();
  const std::size_t bytes = SmallBytes(group, c);
  const bool posts = c.type != CollectiveType::kBroadcast || group.rank() == c.root;
  if (posts && bytes > 0) std::memcpy(group.Small(group.rank(), sig.seq), c.send, bytes);
  group.Post(sig);
  group.Arrive();  // releases the data and the signature
}

// Reductions combine the ranks in order 0..n-1 on every rank (ReduceSources), as
// the staged algorithms do: the same bits everywhere and on either path. Our own
// contribution is read from our area too, so in place needs no care.
void FinishSmall(ShmGroup& group, const Collective& c, const Signature& sig) {
  group.CheckSignatures(sig);
  // A peer that arrived and then aborted inside this op (destroyed, or failed) fails
  // it here too, as the staged ops' later syncs would; one that finished it first
  // does not.
  group.CheckPeersFinish(sig.seq);
  const int n = group.size(), rank = group.rank();
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  if (bytes == 0) {
    group.MarkFinished(sig.seq);
    return;
  }
  char* recv = static_cast<char*>(c.recv);
  thread_local std::vector<const char*> sources;
  switch (c.type) {
    case CollectiveType::kAllReduce:
    case CollectiveType::kReduceScatter: {
      const std::size_t offset = c.type == CollectiveType::kReduceScatter ? rank * bytes : 0;
      sources.resize(n);
      for (int r = 0; r < n; ++r) sources[r] = group.Small(r, sig.seq) + offset;
      ReduceSources(c, sources.data(), n, c.count, recv);
      break;
    }
    case CollectiveType::kAllGather:
      for (int r = 0; r < n; ++r) {
        const char* from = group.Small(r, sig.seq);
        if (r == rank) from = static_cast<const char*>(c.send);
        if (from != recv + r * bytes) std::memcpy(recv + r * bytes, from, bytes);  // in place: our slot is there
      }
      break;
    case CollectiveType::kBroadcast:
      if (rank != c.root) std::memcpy(recv, group.Small(c.root, sig.seq), bytes);
      else if (recv != c.send) std::memcpy(recv, c.send, bytes);
      break;
    case CollectiveType::kBarrier:
      break;
  }
  group.MarkFinished(sig.seq);
}

void RunSmall(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  StartSmall(group, c, sig);
  group.WaitAll(deadline);
  FinishSmall(group, c, sig);
}

}  // namespace mics::shm
