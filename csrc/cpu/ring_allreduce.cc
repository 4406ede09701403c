#include <vector>

#include "cpu/ring_algorithms.h"

namespace mics::ring {

// Ring reduce-scatter over n balanced blocks, then ring all-gather of the reduced
// blocks: 2(n-1)/n of the buffer crosses each link, the bandwidth-optimal amount.
void AllReduce(TcpRing& ring, const Collective& c, const Signature& sig, Deadline deadline) {
  const int n = ring.size();
  const std::size_t elem = ElementSize(c.dtype);
  std::vector<std::size_t> start(n + 1);
  for (int b = 0; b <= n; ++b) start[b] = c.count * static_cast<std::size_t>(b) / n;
  ring.ExchangeSignature(sig, deadline);
  char* recv = static_cast<char*>(c.recv);
  char* mine = recv + start[ring.rank()] * elem;
  ReduceScatterBlocks(ring, c, start, mine, deadline);
  AllGatherBlocks(ring, recv, mine, start, elem, deadline);
}

}  // namespace mics::ring
