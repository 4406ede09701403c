// Algorithms for a communicator whose ranks share one node. Data moves through
// each rank's two shared-memory staging buffers, round by round (double
// buffered), with plain memcpy in and streaming stores out; reductions combine
// contributions in rank order 0..n-1, so results are bit-identical on every rank
// and match a sequential reference. When every rank's input is registered
// (HostRegion), allGather, reduceScatter and allReduce read the peers' inputs
// in place instead (namespace direct).
#pragma once

#include <functional>

#include "comm/collective.h"
#include "cpu/shm_group.h"

namespace mics::shm {

void AllGather(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);
void ReduceScatter(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);
void AllReduce(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);
void Broadcast(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);

// Small ops (shm_small.cc): each rank's data inline in its small-op area, one
// sync. IsSmall: what this rank posts fits (allGather, allReduce, broadcast: the
// buffer; reduceScatter: the whole input; barrier: nothing); the same answer on
// every rank whose call matches. RunSmall = StartSmall (post data and signature,
// arrive), WaitAll, FinishSmall (compare signatures, read the peers' data); the
// caller may wait in its own way between the two halves.
std::size_t SmallBytes(const ShmGroup& group, const Collective& c);
// A one-rank op this small is a copy done on the caller's thread too.
constexpr std::size_t kSelfInlineBytes = ShmGroup::kSmallBytes;
bool IsSmall(const ShmGroup& group, const Collective& c);
void StartSmall(ShmGroup& group, const Collective& c, const Signature& sig);
void FinishSmall(ShmGroup& group, const Collective& c, const Signature& sig);
void RunSmall(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);

// Starts allGather, reduceScatter or allReduce: posts where c's input lies in
// registered memory with the signature and syncs. Ranks whose input is not
// registered stage round 0 before the sync (stageFirstRound), as every staged op
// does. Returns true when every rank's input is registered: the caller runs the
// direct algorithm. Otherwise round 0 is staged everywhere on return.
bool BeginStagedOrDirect(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline,
                         const std::function<void()>& stageFirstRound);

namespace direct {
// After BeginStagedOrDirect returned true; each ends the op (EndOp).
void AllGather(ShmGroup& group, const Collective& c, Deadline deadline);
void ReduceScatter(ShmGroup& group, const Collective& c, Deadline deadline);
void AllReduce(ShmGroup& group, const Collective& c, Deadline deadline);
}  // namespace direct

// out = sources[0] (op) sources[1] (op) ... in that order, in c's dtype and op
// (accumulating in f32 for halves; avg divides by nsources). `out` may be one of
// the sources (in place): that source is read before it is overwritten.
void ReduceSources(const Collective& c, const char* const* sources, int nsources, std::size_t count, void* out);

// How a buffer of `count` elements is cut for the staged reductions: slice r
// (rank r's share, balanced) travels in pieces of pieceCount() elements, one
// piece per round; a staging buffer holds `slots` pieces of slotBytes() each.
class StagedSlices {
 public:
  StagedSlices(const ShmGroup& group, std::size_t count, std::size_t elem, int slots);
  std::size_t rounds() const { return rounds_; }
  std::size_t slotBytes() const { return slotBytes_; }
  std::size_t SliceStart(int r) const { return count_ * static_cast<std::size_t>(r) / n_; }
  std::size_t SliceLength(int r) const { return SliceStart(r + 1) - SliceStart(r); }
  // Elements of slice `slice` in round `round`; *first = its first element.
  std::size_t Piece(int slice, std::size_t round, std::size_t* first) const;

 private:
  int n_;
  std::size_t count_;
  std::size_t elem_;
  std::size_t slotBytes_ = 0;
  std::size_t pieceCount_ = 0;
  std::size_t rounds_ = 1;
};

}  // namespace mics::shm
