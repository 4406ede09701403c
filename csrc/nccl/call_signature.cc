#include "nccl/call_signature.h"

#include <cstring>

namespace mics::nccl {

namespace {

uint32_t Fnv1a(uint32_t hash, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 16777619u;
  }
  return hash;
}

}  // namespace

CallSignature CallSignature::Of(const std::vector<Collective>& collectives, uint64_t seq) {
  CallSignature s;
  std::memset(static_cast<void*>(&s), 0, sizeof(s));  // padding too: the bytes are compared on every rank
  s.ops = static_cast<uint32_t>(collectives.size());
  s.hash = 2166136261u;
  for (std::size_t i = 0; i < collectives.size(); ++i) {
    Signature one = Signature::Of(collectives[i], i == 0 ? seq : 0);
    if (i == 0) {
      s.first = one;
      continue;
    }
    s.hash = Fnv1a(s.hash, &one.count, sizeof(one.count));
    s.hash = Fnv1a(s.hash, &one.root, sizeof(one.root));
    s.hash = Fnv1a(s.hash, &one.type, 3);  // type, dtype, op
  }
  return s;
}

bool CallSignature::operator==(const CallSignature& o) const {
  return first == o.first && ops == o.ops && hash == o.hash;
}

std::string CallSignature::Describe() const {
  if (ops <= 1) return first.Describe();
  return "group of " + std::to_string(ops) + " ops starting with " + first.Describe();
}

CheckMode ParseCheckMode(const char* value) {
  const std::string v = value ? value : "";
  if (v.empty() || v == "new") return CheckMode::kNew;
  if (v == "all") return CheckMode::kAll;
  if (v == "off") return CheckMode::kOff;
  throw Error(ErrorCode::kInvalidArgument,
              "MICS_NCCL_CHECK='" + v + "' is not valid: use new (default), all or off");
}

bool ShapeSet::Insert(const CallSignature& s) {
  return seen_.emplace(s.first.count, s.first.root, s.first.type, s.first.dtype, s.first.op, s.ops, s.hash).second;
}

std::optional<Error> FindMismatch(const std::vector<CallSignature>& all, int rank, const std::string& group) {
  const CallSignature& mine = all[static_cast<std::size_t>(rank)];
  for (std::size_t peer = 0; peer < all.size(); ++peer) {
    if (all[peer] == mine) continue;
    return Error(ErrorCode::kMismatch,
                 "mismatched collectives in group '" + group + "': rank " + std::to_string(rank) + " called " +
                     mine.Describe() + " but rank " + std::to_string(peer) + " called " + all[peer].Describe(),
                 rank, group, mine.first.Describe(), static_cast<int>(peer));
  }
  return std::nullopt;
}

}  // namespace mics::nccl
