#include <algorithm>
#include <vector>

#include "cpu/shm_algorithms.h"
#include "kernels/reduce.h"

namespace mics::shm {

namespace {
// Elements per pass: the accumulator and one peer's chunk stay in L2.
constexpr std::size_t kChunkElements = 32 * 1024;
}  // namespace

void ReduceRange(ShmGroup& group, const Collective& c, std::size_t first, std::size_t count, void* out) {
  const std::size_t elem = ElementSize(c.dtype);
  const DType acc = AccumulatorType(c.dtype);
  const std::size_t accElem = ElementSize(acc);
  thread_local std::vector<char> accBuf, readBuf;
  accBuf.resize(kChunkElements * accElem);
  readBuf.resize(kChunkElements * elem);
  const char* mySend = static_cast<const char*>(c.send);
  char* dst = static_cast<char*>(out);
  for (std::size_t done = 0; done < count; done += kChunkElements) {
    const std::size_t n = std::min(kChunkElements, count - done);
    const std::size_t offset = (first + done) * elem;
    for (int r = 0; r < group.size(); ++r) {
      const void* src = mySend + offset;
      if (r != group.rank()) {
        group.Read(r, group.PeerSend(r) + offset, readBuf.data(), n * elem);
        src = readBuf.data();
      }
      if (r == 0) kernels::LoadAccumulator(c.dtype, accBuf.data(), src, n);
      else kernels::ReduceIntoAccumulator(c.dtype, c.op, accBuf.data(), src, n);
    }
    kernels::StoreAccumulator(c.dtype, c.op, group.size(), dst + done * elem, accBuf.data(), n);
  }
}

void ReduceScatter(ShmGroup& group, const Collective& c, const Signature& sig, Deadline deadline) {
  group.BeginOp(sig, c.send, c.recv, deadline);
  ReduceRange(group, c, static_cast<std::size_t>(group.rank()) * c.count, c.count, c.recv);
  group.EndOp(deadline);
}

}  // namespace mics::shm
