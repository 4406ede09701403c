#include <cstring>
#include <vector>

#include "cpu/ring_algorithms.h"

namespace mics::ring {

// A pipelined chain root -> root+1 -> ... -> root-1: every rank forwards each
// chunk as soon as it has landed (sendLag 0), so time ~ size/bandwidth + n chunks.
// The chain's last rank then sends a one-byte token back to the root, so the root
// completes only once everyone has the data, and a failure or mismatch detected
// anywhere in the chain fails the root's call too instead of a later one.
void Broadcast(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline) {
  const int n = ring.size();
  const int distance = (ring.rank() - c.root + n) % n;
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  ring.ExchangeSignature(sig, deadline);
  char* recv = static_cast<char*>(c.recv);
  PipelinePlan plan;
  plan.sendBytes = plan.recvBytes = [&](int) { return bytes; };
  plan.recvTarget = [&](int) { return recv; };
  if (distance == 0) {
    if (c.recv != c.send && bytes > 0) std::memcpy(c.recv, c.send, bytes);
    plan.sendSteps = 1;
    plan.sendData = [&](int) { return static_cast<const char*>(c.send); };
  } else {
    plan.recvSteps = 1;
    plan.sendSteps = distance < n - 1 ? 1 : 0;
    plan.sendData = [&](int) -> const char* { return recv; };
    plan.sendLag = 0;
  }
  ring.RunPipeline(plan, deadline);
  if (n == 1 || (distance != 0 && distance != n - 1)) return;
  char token = 1;
  PipelinePlan done;
  done.sendBytes = done.recvBytes = [](int) { return std::size_t{1}; };
  done.sendData = [&](int) -> const char* { return &token; };
  done.recvTarget = [&](int) { return &token; };
  if (distance == 0) done.recvSteps = 1;
  else done.sendSteps = 1;
  ring.RunPipeline(done, deadline);
}

void Barrier(TcpRing& ring, const Signature& sig, Deadline deadline) {
  // Everyone has arrived once a one-byte token from every rank reached us.
  ring.ExchangeSignature(sig, deadline);
  std::vector<char> tokens(ring.size(), 1);
  std::vector<std::size_t> start(ring.size() + 1);
  for (int b = 0; b <= ring.size(); ++b) start[b] = b;
  AllGatherBlocks(ring, tokens.data(), tokens.data() + ring.rank(), start, 1, deadline);
}

}  // namespace mics::ring
