#include <algorithm>
#include <vector>

#include "cpu/ring_algorithms.h"
#include "kernels/reduce.h"

namespace mics::ring {

// Step t sends the partial sum of block (r - 1 - t) and receives the left
// neighbour's partial of block (r - 2 - t), adds our contribution and keeps it for
// the next step; the last step's block is r, which is finalised into `out`.
// Partials alternate between two block buffers; a receive may only overwrite a
// buffer region once the previous send of it has left (recvLag 1).
void ReduceScatterBlocks(TcpRing& ring, const Collective& c, const std::vector<std::size_t>& start, void* out,
                         Deadline deadline) {
  const int n = ring.size(), r = ring.rank();
  const std::size_t elem = ElementSize(c.dtype);
  const DType accType = AccumulatorType(c.dtype);
  const std::size_t accElem = ElementSize(accType);
  auto block = [&](int b) { return ((b % n) + n) % n; };
  auto count = [&](int b) { return start[b + 1] - start[b]; };
  std::size_t maxCount = 0;
  for (int b = 0; b < n; ++b) maxCount = std::max(maxCount, count(b));
  thread_local std::vector<char> partials[2];
  for (auto& p : partials) p.resize(std::max<std::size_t>(maxCount * accElem, 1));
  const char* send = static_cast<const char*>(c.send);

  const int first = block(r - 1);
  const char* firstData = send + start[first] * elem;
  if (accType != c.dtype) {  // widen our first block once; buffer 1 is free until step 1
    kernels::LoadAccumulator(c.dtype, partials[1].data(), firstData, count(first));
    firstData = partials[1].data();
  }

  PipelinePlan plan;
  plan.sendSteps = plan.recvSteps = n - 1;
  plan.sendBytes = [&](int t) { return count(block(r - 1 - t)) * accElem; };
  plan.sendData = [&](int t) -> const char* { return t == 0 ? firstData : partials[(t - 1) % 2].data(); };
  plan.recvBytes = [&](int t) { return count(block(r - 2 - t)) * accElem; };
  plan.recvTarget = [&](int t) { return partials[t % 2].data(); };
  plan.onReceived = [&](int t, std::size_t offset, std::size_t length) {
    const int b = block(r - 2 - t);
    const std::size_t e0 = offset / accElem, ne = length / accElem;
    char* acc = partials[t % 2].data() + offset;
    kernels::ReduceIntoAccumulator(c.dtype, c.op, acc, send + (start[b] + e0) * elem, ne);
    if (t == n - 2) kernels::StoreAccumulator(c.dtype, c.op, n, static_cast<char*>(out) + e0 * elem, acc, ne);
  };
  plan.sendLag = 1;
  plan.recvLag = 1;
  ring.RunPipeline(plan, deadline);
}

void ReduceScatter(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline) {
  std::vector<std::size_t> start(ring.size() + 1);
  for (int b = 0; b <= ring.size(); ++b) start[b] = c.count * b;
  ring.ExchangeSignature(sig, deadline);
  ReduceScatterBlocks(ring, c, start, c.recv, deadline);
}

}  // namespace mics::ring
