#include "cpu/host_region_registry.h"

#include "core/error.h"

namespace mics {

HostRegionRegistry& HostRegionRegistry::Instance() {
  static HostRegionRegistry* registry = new HostRegionRegistry();  // never destroyed: finalizers may run at exit
  return *registry;
}

char* HostRegionRegistry::Allocate(std::size_t bytes) {
  auto region = std::make_unique<HostRegion>(bytes);
  char* data = region->data();
  std::lock_guard<std::mutex> lock(mutex_);
  regions_.emplace(reinterpret_cast<uintptr_t>(data), std::move(region));
  return data;
}

void HostRegionRegistry::Free(char* data) {
  std::unique_ptr<HostRegion> region;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = regions_.find(reinterpret_cast<uintptr_t>(data));
    if (it == regions_.end()) return;
    region = std::move(it->second);
    regions_.erase(it);
  }
  freed_.fetch_add(1, std::memory_order_relaxed);
  // Unmapped outside the lock. A peer that mapped it keeps its pages until it unmaps.
}

RegisteredView HostRegionRegistry::Find(const void* data, std::size_t bytes) const {
  const auto address = reinterpret_cast<uintptr_t>(data);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = regions_.upper_bound(address);
  if (it == regions_.begin()) return {};
  --it;
  const HostRegion& region = *it->second;
  const uintptr_t offset = address - it->first;
  if (offset > region.size() || bytes > region.size() - offset) return {};
  RegisteredView view;
  view.fd = region.fd();
  view.inode = region.inode();
  view.regionBytes = region.size();
  view.offset = offset;
  return view;
}

std::size_t HostRegionRegistry::regionCount() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return regions_.size();
}

}  // namespace mics
