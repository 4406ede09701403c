#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/shm_algorithms.h"
#include "kernels/copy.h"
#include "kernels/reduce.h"

namespace mics::shm {

namespace {
// Elements per reduction pass: the accumulator and the sources stay in L1/L2.
constexpr std::size_t kPassElements = 8 * 1024;

// c.accumulate: out += the reduction, pass by pass: each pass's result stays in a
// block that fits the cache and is added to out in the same pass, with the bits a
// reduction into a temporary followed by an out + temporary sum would give.
void AccumulateSources(const Collective& c, const char* const* sources, int nsources, std::size_t count, char* dst) {
  const std::size_t elem = ElementSize(c.dtype);
  thread_local std::vector<char> block;
  block.resize(kPassElements * elem);
  Collective once = c;
  once.accumulate = false;
  thread_local std::vector<const char*> at;
  at.resize(nsources);
  for (std::size_t done = 0; done < count; done += kPassElements) {
    const std::size_t n = std::min(kPassElements, count - done), offset = done * elem;
    for (int r = 0; r < nsources; ++r) at[r] = sources[r] + offset;
    ReduceSources(once, at.data(), nsources, n, block.data());
    kernels::AddInto(c.dtype, dst + offset, block.data(), n);
  }
}

}  // namespace

// Every pass reads its block of every source before it writes the block of the
// output, so the output may be one of the sources (in place; not when accumulating).
void ReduceSources(const Collective& c, const char* const* sources, int nsources, std::size_t count, void* out) {
  const std::size_t elem = ElementSize(c.dtype);
  char* dst = static_cast<char*>(out);
  if (c.accumulate) return AccumulateSources(c, sources, nsources, count, dst);
  if (nsources < 2) {
    // One rank: the result is its input, through the accumulator (avg divides by 1).
    thread_local std::vector<char> acc;
    acc.resize(kPassElements * ElementSize(AccumulatorType(c.dtype)));
    for (std::size_t done = 0; done < count; done += kPassElements) {
      const std::size_t n = std::min(kPassElements, count - done);
      kernels::LoadAccumulator(c.dtype, acc.data(), sources[0] + done * elem, n);
      kernels::StoreAccumulator(c.dtype, c.op, nsources, dst + done * elem, acc.data(), n);
    }
    return;
  }
  // One fused pass over all sources: out = ((s0 op s1) op s2) ..., halves in f32
  // rounded once at the end, avg divided at the end.
  thread_local std::vector<const char*> at;
  at.resize(nsources);
  for (std::size_t done = 0; done < count; done += kPassElements) {
    const std::size_t n = std::min(kPassElements, count - done), offset = done * elem;
    for (int r = 0; r < nsources; ++r) at[r] = sources[r] + offset;
    kernels::ReduceMany(c.dtype, c.op, dst + offset, reinterpret_cast<const void* const*>(at.data()), nsources, n);
  }
}

StagedSlices::StagedSlices(const ShmGroup& group, std::size_t count, std::size_t elem, int slots)
    : n_(group.size()), count_(count), elem_(elem) {
  // Slots 64-byte aligned, of whole elements.
  std::size_t slotBytes = group.stagingBytes() / static_cast<std::size_t>(slots) / 64 * 64;
  slotBytes = std::max<std::size_t>(slotBytes / elem * elem, elem);
  slotBytes_ = slotBytes;
  pieceCount_ = slotBytes / elem;
  std::size_t longest = 0;
  for (int r = 0; r < n_; ++r) longest = std::max(longest, SliceLength(r));
  rounds_ = std::max<std::size_t>(1, (longest + pieceCount_ - 1) / pieceCount_);
}

std::size_t StagedSlices::Piece(int slice, std::size_t round, std::size_t* first) const {
  const std::size_t begin = std::min(round * pieceCount_, SliceLength(slice));
  *first = SliceStart(slice) + begin;
  return std::min(pieceCount_, SliceLength(slice) - begin);
}

namespace {

// Copies piece k of every slice of our input but our own into our staging slots;
// after the round's sync every rank's pieces of round k are readable in staging
// buffer k % 2. Our own slice is only ever read by us, from the input.
void StageRound(ShmGroup& group, const StagedSlices& plan, const char* send, std::size_t elem, std::size_t k) {
  char* slots = group.Staging(group.rank(), static_cast<int>(k % 2));
  for (int q = 0; q < group.size(); ++q) {
    if (q == group.rank()) continue;
    std::size_t first = 0;
    const std::size_t length = plan.Piece(q, k, &first);
    if (length) std::memcpy(slots + q * plan.slotBytes(), send + first * elem, length * elem);
  }
}

void SyncRound(ShmGroup& group, Deadline deadline) {
  group.Arrive();
  group.WaitAll(deadline);
}

}  // namespace

// Round by round, through the staging buffers (no cross-memory reads): every rank
// copies piece k of every slice of its input into its staging slots, one sync,
// then rank r reduces slice r's piece from everyone's slot r, in rank order.
// A staging buffer is rewritten two rounds later, after the next round's sync
// proved every peer done with it.
void ReduceScatter(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  const int n = group.size(), rank = group.rank();
  const std::size_t elem = ElementSize(c.dtype);
  // Slice q of the input is block q: rank q's output.
  StagedSlices plan(group, c.count * n, elem, /*slots=*/n);  // one per slice
  const char* send = static_cast<const char*>(c.send);
  std::vector<const char*> sources(n);
  if (BeginStagedOrDirect(group, c, sig, deadline, [&] { StageRound(group, plan, send, elem, 0); })) {
    return direct::ReduceScatter(group, c, deadline);
  }
  for (std::size_t k = 0; k < plan.rounds(); ++k) {
    const int buffer = static_cast<int>(k % 2);
    if (k > 0) {
      StageRound(group, plan, send, elem, k);
      SyncRound(group, deadline);
    }
    std::size_t first = 0;
    const std::size_t length = plan.Piece(rank, k, &first);
    if (length == 0) continue;
    for (int r = 0; r < n; ++r) sources[r] = group.Staging(r, buffer) + rank * plan.slotBytes();
    // Our own piece is read from the input; in place it is also the output piece,
    // which ReduceSources allows.
    sources[rank] = send + first * elem;
    const std::size_t within = first - plan.SliceStart(rank);
    ReduceSources(c, sources.data(), n, length, static_cast<char*>(c.recv) + within * elem);
  }
  group.EndOp(deadline);
}

// Reduce-scatter and all-gather fused, round by round, one sync per round: piece
// k of every slice goes to the staging slots (sync k); then each rank copies out
// the peers' reduced pieces of round k-1 (finished before they reached sync k)
// and reduces slice r's piece k into its result slot and its output. Result slots
// and input slots are disjoint, so staging round k+1's inputs never disturbs a
// peer still copying round k-1's result out of the same buffer. Everything
// between the input read and the output write stays in the shared cache; in place
// is safe because nobody reads another rank's user buffer.
void AllReduce(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  const int n = group.size(), rank = group.rank();
  const std::size_t elem = ElementSize(c.dtype);
  StagedSlices plan(group, c.count, elem, /*slots=*/n + 1);  // one per slice and the result
  const std::size_t resultSlot = static_cast<std::size_t>(n) * plan.slotBytes();
  const char* send = static_cast<const char*>(c.send);
  char* recv = static_cast<char*>(c.recv);
  std::vector<const char*> sources(n);
  auto copyPeerResults = [&](std::size_t k) {
    for (int i = 1; i < n; ++i) {
      const int peer = (rank + i) % n;
      std::size_t first = 0;
      const std::size_t length = plan.Piece(peer, k, &first);
      if (length) {
        kernels::CopyToOutput(recv + first * elem, group.Staging(peer, static_cast<int>(k % 2)) + resultSlot,
                              length * elem);
      }
    }
  };
  if (BeginStagedOrDirect(group, c, sig, deadline,
                          [&] { StageRound(group, plan, send, elem, 0); })) {
    return direct::AllReduce(group, c, deadline);
  }
  for (std::size_t k = 0; k < plan.rounds(); ++k) {
    // Our slice is read from the input: the reduction writes the result slot, and
    // in place the output piece is overwritten only after it was reduced.
    if (k > 0) {
      StageRound(group, plan, send, elem, k);
      SyncRound(group, deadline);
    }
    if (k > 0) copyPeerResults(k - 1);
    std::size_t first = 0;
    const std::size_t length = plan.Piece(rank, k, &first);
    if (length) {
      const int buffer = static_cast<int>(k % 2);
      for (int r = 0; r < n; ++r) sources[r] = group.Staging(r, buffer) + rank * plan.slotBytes();
      sources[rank] = send + first * elem;
      char* result = group.Staging(rank, buffer) + resultSlot;
      ReduceSources(c, sources.data(), n, length, result);
      kernels::CopyToOutput(recv + first * elem, result, length * elem);
    }
  }
  SyncRound(group, deadline);  // the last round's results are complete everywhere
  copyPeerResults(plan.rounds() - 1);
  group.EndOp(deadline);
}

}  // namespace mics::shm
