// What ranks of an NCCL communicator compare before a call, so that ranks calling
// different collectives fail with MICS_MISMATCH naming both calls instead of
// corrupting data or hanging until the timeout (the CPU backend compares the same
// Signature on its own transport). A call is one op or one group of ops.
//
// When: MICS_NCCL_CHECK (read per communicator) = "new" (default): before the first
// call of each shape (the call without its sequence number) seen by this
// communicator; "all": before every call (debug; one small all-gather and a wait
// per call); "off". In "new" mode a mismatch between a shape one rank has seen and
// one it has not is not caught here (the ranks then disagree on whether to check):
// it ends in the op's timeout, as without a check.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "comm/collective.h"
#include "core/error.h"

namespace mics::nccl {

// Fixed-size and trivially copyable: all-gathered as bytes.
struct CallSignature {
  Signature first;  // the first op (the only one unless a group)
  uint32_t ops;     // ops in the call
  uint32_t hash;    // FNV-1a of every op's signature (seq zeroed) after the first

  static CallSignature Of(const std::vector<Collective>& collectives, uint64_t seq);
  bool operator==(const CallSignature& other) const;
  bool operator!=(const CallSignature& other) const { return !(*this == other); }
  // "allReduce(count=1024, dtype=f32, op=sum) #7", or "group of 3 ops starting with ..."
  std::string Describe() const;
};
static_assert(sizeof(CallSignature) == 32, "CallSignature is all-gathered as 32 bytes");

enum class CheckMode { kOff, kNew, kAll };

// MICS_NCCL_CHECK's value; throws kInvalidArgument naming the valid values.
CheckMode ParseCheckMode(const char* value);

// The shapes a communicator has checked ("new" mode).
class ShapeSet {
 public:
  // True the first time a shape is seen (and records it).
  bool Insert(const CallSignature& signature);

 private:
  std::set<std::tuple<uint64_t, int32_t, uint8_t, uint8_t, uint8_t, uint32_t, uint32_t>> seen_;
};

// The mismatch error for `all` (every rank's signature, by rank) as seen from
// `rank`, or nothing when all agree. Names the lowest rank that differs.
std::optional<Error> FindMismatch(const std::vector<CallSignature>& all, int rank, const std::string& group);

}  // namespace mics::nccl
