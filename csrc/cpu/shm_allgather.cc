#include <algorithm>
#include <cstring>

#include "cpu/shm_algorithms.h"
#include "kernels/copy.h"

namespace mics::shm {

// Staged through shared memory, round by round: each rank copies the next piece
// of its input into one of its two staging buffers, one sync, then every rank
// copies that piece from every peer's staging buffer into place. A buffer is
// reused two rounds later, after the next round's sync proved every peer done
// reading it. Plain memcpy both ways beats one cross-memory read per byte.
void AllGather(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  const std::size_t piece = group.stagingBytes();
  const char* send = static_cast<const char*>(c.send);
  char* recv = static_cast<char*>(c.recv);
  const int n = group.size(), rank = group.rank();
  const bool inPlace = send == recv + rank * bytes;
  const std::size_t rounds = std::max<std::size_t>(1, (bytes + piece - 1) / piece);
  auto stage = [&](std::size_t k) {
    const std::size_t offset = k * piece, length = std::min(piece, bytes - offset);
    if (length > 0) std::memcpy(group.Staging(rank, static_cast<int>(k % 2)), send + offset, length);
  };
  if (BeginStagedOrDirect(group, c, sig, deadline, [&] { stage(0); })) return direct::AllGather(group, c, deadline);
  for (std::size_t k = 0; k < rounds; ++k) {
    const std::size_t offset = k * piece, length = std::min(piece, bytes - offset);
    const int buffer = static_cast<int>(k % 2);
    if (k > 0) {
      stage(k);
      group.Arrive();
      group.WaitAll(deadline);
    }
    for (int i = 1; i < n && length > 0; ++i) {
      const int peer = (rank + i) % n;  // spread the readers over the peers
      kernels::CopyToOutput(recv + peer * bytes + offset, group.Staging(peer, buffer), length);
    }
    if (!inPlace && length > 0) kernels::CopyToOutput(recv + rank * bytes + offset, send + offset, length);
  }
  group.EndOp(deadline);
}

}  // namespace mics::shm
