// Direct (single-copy) algorithms for a communicator whose ranks share one node.
// Each rank reads what it needs straight from its peers' buffers; reductions
// combine contributions in rank order 0..n-1, so results are bit-identical on
// every rank and match a sequential reference.
#pragma once

#include "comm/collective.h"
#include "cpu/shm_group.h"

namespace mics::shm {

void AllGather(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);
void ReduceScatter(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);
void AllReduce(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);
void Broadcast(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline);
void Barrier(ShmGroup& group, const Signature& sig, Deadline deadline);

// Reduces elements [first, first+count) of every rank's send buffer into `out`
// (the shared loop of ReduceScatter and AllReduce).
void ReduceRange(ShmGroup& group, const Collective& c, std::size_t first, std::size_t count, void* out);

}  // namespace mics::shm
