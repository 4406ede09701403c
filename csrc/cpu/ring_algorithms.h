// Pipelined ring algorithms over TcpRing for communicators that span nodes.
// Reductions travel in the accumulator type (f32 for f16/bf16), so half-precision
// sums round once, at the end, as in the shared-memory algorithms.
#pragma once

#include <cstddef>
#include <vector>

#include "comm/collective.h"
#include "cpu/tcp_ring.h"

namespace mics::ring {

void AllGather(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline);
void ReduceScatter(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline);
void AllReduce(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline);
void Broadcast(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline);
void Barrier(TcpRing& ring, const Signature& sig, Deadline deadline);

// Block b of the ring covers elements [start[b], start[b+1]).
void AllGatherBlocks(TcpRing& ring, char* buffer, const char* ownBlock, const std::vector<std::size_t>& start,
                     std::size_t elementSize, Deadline deadline);
void ReduceScatterBlocks(TcpRing& ring, const Collective& c, const std::vector<std::size_t>& start, void* out,
                         Deadline deadline);

}  // namespace mics::ring
