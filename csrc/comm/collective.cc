#include "comm/collective.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mics {

Deadline DeadlineAfter(double ms) {
  const Deadline now = Clock::now();
  // Whole milliseconds left before the clock's maximum: anything at or above it saturates.
  const int64_t room = std::chrono::duration_cast<std::chrono::milliseconds>(Deadline::max() - now).count();
  if (!(ms < static_cast<double>(room))) return Deadline::max();  // also +Infinity (and NaN)
  const auto whole = static_cast<int64_t>(std::ceil(std::max(ms, 0.0)));
  if (whole >= room) return Deadline::max();
  return now + std::chrono::milliseconds(whole);  // whole * 10^6 ns <= max - now: no overflow
}

const char* CollectiveName(CollectiveType type) {
  switch (type) {
    case CollectiveType::kAllGather: return "allGather";
    case CollectiveType::kReduceScatter: return "reduceScatter";
    case CollectiveType::kAllReduce: return "allReduce";
    case CollectiveType::kBroadcast: return "broadcast";
    case CollectiveType::kBarrier: return "barrier";
  }
  return "?";
}

Signature Signature::Of(const Collective& c, uint64_t seq) {
  Signature s{};
  s.seq = seq;
  s.count = c.count;
  s.root = c.type == CollectiveType::kBroadcast ? c.root : 0;
  s.type = static_cast<uint8_t>(c.type);
  s.dtype = static_cast<uint8_t>(c.dtype);
  // Only reductions care about the op; other calls must not mismatch on it.
  bool reduces = c.type == CollectiveType::kReduceScatter || c.type == CollectiveType::kAllReduce;
  s.op = reduces ? static_cast<uint8_t>(c.op) : 0;
  return s;
}

bool Signature::operator==(const Signature& o) const {
  return seq == o.seq && count == o.count && root == o.root && type == o.type && dtype == o.dtype &&
         op == o.op;
}

std::string Signature::Describe() const {
  auto t = static_cast<CollectiveType>(type);
  std::string text = std::string(CollectiveName(t));
  if (t == CollectiveType::kBarrier) return text + "() #" + std::to_string(seq);
  text += "(count=" + std::to_string(count) + ", dtype=" + DTypeName(static_cast<DType>(dtype));
  if (t == CollectiveType::kReduceScatter || t == CollectiveType::kAllReduce) {
    text += std::string(", op=") + ReduceOpName(static_cast<ReduceOp>(op));
  }
  if (t == CollectiveType::kBroadcast) text += ", root=" + std::to_string(root);
  return text + ") #" + std::to_string(seq);
}

}  // namespace mics
