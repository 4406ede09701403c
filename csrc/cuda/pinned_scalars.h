// Small slots of pinned (page-locked) host memory, for results a kernel leaves on
// the device (a sum, a flag): a copy into pinned memory is truly asynchronous, so
// the JS thread never waits for the kernel to read it. Slots come from chunks that
// are never freed (cudaFreeHost would synchronise the device), and are reused.
// No CUDA types here. Thread-safe.
#pragma once

#include <cstddef>
#include <memory>

namespace mics::cuda {

class PinnedScalars {
 public:
  static constexpr std::size_t kSlotBytes = 16;

  // A slot of kSlotBytes (16-byte aligned), returned to the pool when the pointer
  // is destroyed (on any thread: no CUDA call). Throws mics::Error when CUDA cannot
  // pin memory.
  using Slot = std::unique_ptr<void, void (*)(void*)>;
  static Slot Acquire();
};

}  // namespace mics::cuda
