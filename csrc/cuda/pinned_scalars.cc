#include "cuda/pinned_scalars.h"

#include <cuda_runtime_api.h>

#include <mutex>
#include <vector>

#include "cuda/cuda_error.h"

namespace mics::cuda {

namespace {

constexpr std::size_t kChunkBytes = 4096;

struct Pool {
  std::mutex mutex;
  std::vector<void*> free;  // slots ready for reuse
};

Pool& ThePool() {
  static auto* pool = new Pool();  // never destroyed: slots may come back during exit
  return *pool;
}

void Return(void* slot) {
  if (slot == nullptr) return;
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  pool.free.push_back(slot);
}

}  // namespace

PinnedScalars::Slot PinnedScalars::Acquire() {
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  if (pool.free.empty()) {
    void* chunk = nullptr;
    // Portable: usable with every device's streams.
    CheckCuda(cudaHostAlloc(&chunk, kChunkBytes, cudaHostAllocPortable), "cudaHostAlloc(4096 bytes)");
    for (std::size_t offset = 0; offset + kSlotBytes <= kChunkBytes; offset += kSlotBytes) {
      pool.free.push_back(static_cast<char*>(chunk) + offset);
    }
  }
  void* slot = pool.free.back();
  pool.free.pop_back();
  return Slot(slot, Return);
}

}  // namespace mics::cuda
