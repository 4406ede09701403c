// Every HostRegion of this process, looked up by address: a collective asks
// whether its input lies inside one, and if so publishes where (fd, inode,
// offset) so that peers can map it. Thread-safe: JS allocates and
// frees on the main thread while progress threads look up.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "cpu/host_region.h"

namespace mics {

// Where a buffer lies in its owner's HostRegion. Written into shared memory.
struct RegisteredView {
  int32_t fd = -1;  // in the owner's process; -1: not in a region
  uint32_t reserved = 0;
  uint64_t inode = 0;
  uint64_t regionBytes = 0;
  uint64_t offset = 0;
  bool valid() const { return fd >= 0; }
};

class HostRegionRegistry {
 public:
  static HostRegionRegistry& Instance();

  // A new zero-filled region of `bytes` (> 0); freed by Free(data).
  char* Allocate(std::size_t bytes);
  void Free(char* data);
  // The view of [data, data + bytes) when it lies inside one region; else invalid.
  RegisteredView Find(const void* data, std::size_t bytes) const;
  std::size_t regionCount() const;
  // Regions freed so far: peers that see it change drop their stale mappings.
  uint64_t freedCount() const { return freed_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> freed_{0};
  mutable std::mutex mutex_;
  std::map<uintptr_t, std::unique_ptr<HostRegion>> regions_;  // by base address
};

}  // namespace mics
