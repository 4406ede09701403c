// The peers' HostRegions this rank has mapped, read-only, for direct reads: a
// region is opened through /proc/<pid>/fd/<fd> (allowed between processes of
// one user; no ptrace attach needed), checked by inode, mapped and kept for
// later ops. Mappings of regions their owner has freed are dropped at the
// owner's next direct op (it posts how many regions it has freed); at most
// kPerPeer mappings are kept per peer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/host_region_registry.h"

namespace mics {

class PeerRegions {
 public:
  static constexpr std::size_t kPerPeer = 8;

  PeerRegions() = default;
  ~PeerRegions();
  PeerRegions(const PeerRegions&) = delete;
  PeerRegions& operator=(const PeerRegions&) = delete;

  // Starts an op: mappings resolved from here on are not evicted before the next one.
  void NextOp() { ++op_; }
  // Rank `peer` (process `pid`) has freed `freed` regions so far: when that
  // changed, drop our mappings of the ones that are gone.
  void NoteFreed(int peer, int pid, uint64_t freed);
  // The first byte of `view` in rank `peer`'s (process `pid`) memory, mapped here;
  // the op reads `bytes` from there. The view comes from the peer's shared slot
  // and is checked before use: [offset, offset + bytes) must lie inside the
  // region, and the region must be the peer's sealed memfd of that size (so it
  // cannot shrink under us). Throws kSystem naming the peer and the path when the
  // region cannot be mapped, kInternal when the view is malformed.
  const char* Resolve(int peer, int pid, const RegisteredView& view, std::size_t bytes);
  std::size_t mappedCount() const { return mappings_.size(); }

 private:
  struct Mapping {
    int pid;
    int fd;
    uint64_t inode;
    char* data;
    std::size_t bytes;
    uint64_t lastOp;
  };
  void DropStale(int pid);
  void Evict(std::size_t index);

  std::vector<Mapping> mappings_;
  std::vector<uint64_t> freedSeen_;  // per peer rank
  uint64_t op_ = 0;
};

}  // namespace mics
