#include "cpu/peer_regions.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>

#include "core/error.h"
#include "cpu/unique_fd.h"

namespace mics {

namespace {

std::string FdPath(int pid, int fd) { return "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd); }

}  // namespace

PeerRegions::~PeerRegions() {
  for (const Mapping& m : mappings_) munmap(m.data, m.bytes);
}

void PeerRegions::NoteFreed(int peer, int pid, uint64_t freed) {
  if (freedSeen_.size() <= static_cast<std::size_t>(peer)) freedSeen_.resize(peer + 1, 0);
  if (freedSeen_[peer] == freed) return;
  freedSeen_[peer] = freed;
  DropStale(pid);
}

const char* PeerRegions::Resolve(int peer, int pid, const RegisteredView& view, std::size_t bytes) {
  const std::string who = "rank " + std::to_string(peer) + " (pid " + std::to_string(pid) + ")";
  // Written by the peer into shared memory: a buggy or hostile peer must get an
  // error here, not make us read outside what we map.
  if (view.fd < 0 || view.regionBytes == 0 || view.regionBytes > static_cast<uint64_t>(PTRDIFF_MAX) ||
      view.offset > view.regionBytes || bytes > view.regionBytes - view.offset) {
    throw Error(ErrorCode::kInternal,
                who + " published a malformed registered buffer: " + std::to_string(bytes) + " bytes at offset " +
                    std::to_string(view.offset) + " of a region of " + std::to_string(view.regionBytes) +
                    " bytes (fd " + std::to_string(view.fd) + "); the op needs the whole input inside the region",
                -1, "", "", peer);
  }
  for (Mapping& m : mappings_) {
    if (m.pid == pid && m.inode == view.inode && m.bytes >= view.regionBytes) {
      m.lastOp = op_;
      return m.data + view.offset;
    }
  }
  const std::string path = FdPath(pid, view.fd);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    throw Error(ErrorCode::kSystem,
                SystemErrorText("cannot map the registered buffer of " + who + ": open(" + path + ")", errno) +
                    "; direct reads need the ranks of a node to run as one user in one PID namespace "
                    "(MICS_SHM_DIRECT=0 stages through shared memory instead)",
                -1, "", "", peer);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || static_cast<uint64_t>(st.st_ino) != view.inode ||
      static_cast<uint64_t>(st.st_size) < view.regionBytes) {
    throw Error(ErrorCode::kSystem,
                "cannot map the registered buffer of " + who + ": " + path + " is not the region it published (inode " +
                    std::to_string(view.inode) + ", " + std::to_string(view.regionBytes) + " bytes)",
                -1, "", "", peer);
  }
  // Only a region whose size is sealed is safe to read: an unsealed file could be
  // truncated by its owner while we read it, and the read would fault (SIGBUS).
  const int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
    throw Error(ErrorCode::kInternal,
                "refusing to map the registered buffer of " + who + ": " + path +
                    " is not a sealed allocHost region (its size could change while this rank reads it)",
                -1, "", "", peer);
  }
  void* p = mmap(nullptr, view.regionBytes, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    throw Error(ErrorCode::kSystem,
                SystemErrorText("cannot map the registered buffer of " + who + ": mmap(" + path + ")", errno), -1, "",
                "", peer);
  }
  std::size_t perPeer = 0, oldest = mappings_.size();
  for (std::size_t i = 0; i < mappings_.size(); ++i) {
    if (mappings_[i].pid != pid) continue;
    ++perPeer;
    if (mappings_[i].lastOp != op_ && (oldest == mappings_.size() || mappings_[i].lastOp < mappings_[oldest].lastOp)) {
      oldest = i;
    }
  }
  if (perPeer >= kPerPeer && oldest < mappings_.size()) Evict(oldest);
  mappings_.push_back(Mapping{pid, view.fd, view.inode, static_cast<char*>(p), view.regionBytes, op_});
  return static_cast<char*>(p) + view.offset;
}

// A mapping is stale when its owner no longer has that region open under that fd
// (freed it, or exited): keeping it would only pin the pages.
void PeerRegions::DropStale(int pid) {
  for (std::size_t i = mappings_.size(); i-- > 0;) {
    const Mapping& m = mappings_[i];
    if (m.pid != pid || m.lastOp == op_) continue;
    struct stat st {};
    if (stat(FdPath(m.pid, m.fd).c_str(), &st) != 0 || static_cast<uint64_t>(st.st_ino) != m.inode) Evict(i);
  }
}

void PeerRegions::Evict(std::size_t index) {
  munmap(mappings_[index].data, mappings_[index].bytes);
  mappings_.erase(mappings_.begin() + static_cast<std::ptrdiff_t>(index));
}

}  // namespace mics
