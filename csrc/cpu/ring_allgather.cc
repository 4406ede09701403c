#include <cstring>

#include "cpu/ring_algorithms.h"

namespace mics::ring {

// Step t sends block (r - t) and receives block (r - 1 - t) straight into place;
// a received chunk is forwarded as soon as it has landed (sendLag 1).
void AllGatherBlocks(TcpRing& ring, char* buffer, const char* ownBlock, const std::vector<std::size_t>& start,
                     std::size_t elementSize, Deadline deadline) {
  const int n = ring.size(), r = ring.rank();
  auto block = [&](int b) { return ((b % n) + n) % n; };
  auto bytes = [&](int b) { return (start[b + 1] - start[b]) * elementSize; };
  PipelinePlan plan;
  plan.sendSteps = plan.recvSteps = n - 1;
  plan.sendBytes = [&](int t) { return bytes(block(r - t)); };
  plan.sendData = [&](int t) -> const char* {
    return t == 0 ? ownBlock : buffer + start[block(r - t)] * elementSize;
  };
  plan.recvBytes = [&](int t) { return bytes(block(r - 1 - t)); };
  plan.recvTarget = [&](int t) { return buffer + start[block(r - 1 - t)] * elementSize; };
  plan.sendLag = 1;
  ring.RunPipeline(plan, deadline);
}

void AllGather(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline) {
  const std::size_t elem = ElementSize(c.dtype);
  std::vector<std::size_t> start(ring.size() + 1);
  for (int b = 0; b <= ring.size(); ++b) start[b] = c.count * b;
  ring.ExchangeSignature(sig, deadline);
  char* recv = static_cast<char*>(c.recv);
  char* mine = recv + start[ring.rank()] * elem;
  if (mine != c.send && c.count > 0) std::memcpy(mine, c.send, c.count * elem);
  AllGatherBlocks(ring, recv, static_cast<const char*>(c.send), start, elem, deadline);
}

}  // namespace mics::ring
