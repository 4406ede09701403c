// Host memory that same-node peers can map: an anonymous memfd mapping. Inputs
// allocated this way (allocHost in JS) let the shared-memory algorithms read a
// peer's input in place instead of staging it (MPI_Alloc_mem and NCCL's
// registered buffers play the same role). A peer maps a region through
// /proc/<pid>/fd/<fd> (see PeerRegions): nothing has a name, so nothing can leak
// when a process dies; the pages go when the last mapping does. The memfd is
// mode 0600 and sealed (see SealRegion): docs/security.md has the trust model.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/unique_fd.h"

namespace mics {

// Seals a region's memfd: its size can never change and, where the kernel has
// F_SEAL_FUTURE_WRITE, no new writable mapping can be made. Peers refuse to map
// a region without the size seals (PeerRegions).
void SealRegion(int fd);

class HostRegion {
 public:
  explicit HostRegion(std::size_t bytes);  // zero-filled; bytes > 0
  ~HostRegion();
  HostRegion(const HostRegion&) = delete;
  HostRegion& operator=(const HostRegion&) = delete;

  char* data() const { return data_; }
  std::size_t size() const { return size_; }
  int fd() const { return fd_.get(); }
  // The memfd's inode: peers check it so a reused fd number cannot fool them.
  uint64_t inode() const { return inode_; }

 private:
  UniqueFd fd_;
  char* data_ = nullptr;
  std::size_t size_ = 0;
  uint64_t inode_ = 0;
};

}  // namespace mics
