// One collective call as every backend sees it, and its signature: what ranks
// compare before moving data so that mismatched calls fail instead of corrupting.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace mics {

enum class CollectiveType : uint8_t { kAllGather, kReduceScatter, kAllReduce, kBroadcast, kBarrier };

const char* CollectiveName(CollectiveType type);  // "allGather", ...

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// The deadline `ms` milliseconds from now (fractions round up). Saturates to
// Deadline::max() ("no deadline") where now + ms would not fit in the clock's
// 64-bit nanoseconds (from about 9.2e12 ms, 292 years; +Infinity too): a naive
// now + milliseconds(ms) wraps negative there and times out at once. Every
// deadline user compares against Clock::now() or subtracts now from it, which
// Deadline::max() survives. Callers reject NaN and ms <= 0 first.
Deadline DeadlineAfter(double ms);

struct Collective {
  CollectiveType type = CollectiveType::kBarrier;
  const void* send = nullptr;  // allGather: count elements; reduceScatter: size*count; others: count
  void* recv = nullptr;        // allGather: size*count; reduceScatter: count; others: count
  std::size_t count = 0;       // per-rank count (allGather, reduceScatter) or buffer count
  DType dtype = DType::kU8;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
  // reduceScatter on the CPU backend: recv += the reduction (gradient accumulation in
  // the same pass) instead of recv = it. Never in place. Not part of the signature:
  // it only changes what a rank does with its own block.
  bool accumulate = false;
};

// Fixed-size, trivially copyable: it is written into shared memory and onto sockets.
struct Signature {
  uint64_t seq;
  uint64_t count;
  int32_t root;
  uint8_t type;
  uint8_t dtype;
  uint8_t op;
  uint8_t pad = 0;

  static Signature Of(const Collective& c, uint64_t seq);
  bool operator==(const Signature& other) const;
  bool operator!=(const Signature& other) const { return !(*this == other); }
  // "allReduce(count=1024, dtype=f32, op=sum) #7"
  std::string Describe() const;
};
static_assert(sizeof(Signature) == 24, "Signature layout is part of the wire format");

}  // namespace mics
