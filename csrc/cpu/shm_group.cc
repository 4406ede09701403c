#include "cpu/shm_group.h"

#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/error.h"
#include "cpu/signature_census.h"

namespace mics {

namespace {

void FutexWake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int timeoutMs) {
  timespec ts{timeoutMs / 1000, (timeoutMs % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

bool Reached(uint32_t value, uint32_t target) { return static_cast<int32_t>(value - target) >= 0; }

int PidfdOpen(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

// The segment: the control slot (first page), the two small-op areas, the two
// staging buffers.
constexpr std::size_t kSmallOffset = 4096;
constexpr std::size_t kStagingOffset = kSmallOffset + 2 * ShmGroup::kSmallBytes;
static_assert(sizeof(ShmControlSlot) <= kSmallOffset, "control slot fits in the first page");

namespace {

// A byte count from the environment, in [4096, 1 GiB], or `fallback` when unset.
std::size_t BytesFromEnv(const char* name, std::size_t fallback) {
  const char* env = std::getenv(name);
  if (!env || !*env) return fallback;
  char* end = nullptr;
  unsigned long long value = std::strtoull(env, &end, 10);
  if (end && *end == '\0' && value >= 4096 && value <= (1ull << 30)) return static_cast<std::size_t>(value);
  throw Error(ErrorCode::kInvalidArgument,
              std::string(name) + "=" + env + " is not valid: use a byte count in [4096, 1073741824]");
}

}  // namespace

std::size_t ShmGroup::DefaultStagingBytes() { return BytesFromEnv("MICS_SHM_STAGING_BYTES", 1u << 20); }

ShmGroup::ShmGroup(int rank, int size, std::string name, std::size_t stagingBytes)
    : rank_(rank), size_(size), name_(std::move(name)), stagingBytes_(stagingBytes) {
  RemoveStaleSegments();
  // tmpfs allocates pages on first touch: unused staging costs nothing.
  segment_ = ShmSegment::Create(NewSegmentName(), kStagingOffset + 2 * stagingBytes_);
  mine_ = new (segment_.data()) ShmControlSlot();
  mine_->stagingBytes = stagingBytes_;
  mine_->phase.store(0);
  mine_->aborted.store(0);
  mine_->pid = static_cast<int32_t>(getpid());
  mine_->completedSeq.store(0);
}

ShmGroup::~ShmGroup() {
  // Wake anyone still waiting on us (they will see the flag, or our pid exit).
  if (mine_ && !abortClaimed_.load()) {
    Abort(Error(ErrorCode::kAborted, "rank " + std::to_string(rank_) + " destroyed its communicator", rank_, name_));
  }
}

void ShmGroup::Connect(const std::vector<PeerAddress>& peers, Deadline deadline) {
  slots_.assign(size_, nullptr);
  staging_.assign(size_, nullptr);
  small_.assign(size_, nullptr);
  peerSegments_.resize(size_);
  pidfds_.resize(size_);
  pids_.assign(size_, 0);
  for (const PeerAddress& peer : peers) {
    if (peer.rank == rank_) {
      slots_[rank_] = mine_;
      staging_[rank_] = static_cast<char*>(segment_.data()) + kStagingOffset;
      small_[rank_] = static_cast<char*>(segment_.data()) + kSmallOffset;
      pids_[rank_] = peer.pid;
      continue;
    }
    peerSegments_[peer.rank] = ShmSegment::Open(peer.shm);
    // The size first: a slot is only read from a segment large enough to hold it.
    const std::size_t segmentBytes = peerSegments_[peer.rank].size();
    const uint64_t theirStaging =
        segmentBytes >= kStagingOffset ? static_cast<ShmControlSlot*>(peerSegments_[peer.rank].data())->stagingBytes : 0;
    if (theirStaging != stagingBytes_ || segmentBytes < kStagingOffset + 2 * stagingBytes_) {
      throw Error(ErrorCode::kInvalidArgument,
                  "rank " + std::to_string(peer.rank) + " uses " + std::to_string(theirStaging) +
                      " staging bytes (a segment of " + std::to_string(segmentBytes) + " bytes) but rank " +
                      std::to_string(rank_) + " uses " + std::to_string(stagingBytes_) +
                      ": set the same MICS_SHM_STAGING_BYTES on every rank",
                  rank_, name_, "connect", peer.rank);
    }
    slots_[peer.rank] = static_cast<ShmControlSlot*>(peerSegments_[peer.rank].data());
    staging_[peer.rank] = static_cast<char*>(peerSegments_[peer.rank].data()) + kStagingOffset;
    small_[peer.rank] = static_cast<char*>(peerSegments_[peer.rank].data()) + kSmallOffset;
    pids_[peer.rank] = peer.pid;
    int fd = PidfdOpen(peer.pid);
    if (fd < 0 && errno == ESRCH) {
      throw Error(ErrorCode::kPeerLost, "rank " + std::to_string(peer.rank) + " (pid " +
                                            std::to_string(peer.pid) + ") exited during setup",
                  rank_, name_, "connect", peer.rank);
    }
    pidfds_[peer.rank].reset(fd);  // -1 on kernels without pidfd: fall back to kill(pid, 0)
  }
  connecting_ = true;
  Arrive();
  WaitAll(deadline);  // every peer has mapped our segment: its name can go
  segment_.Unlink();
}

void ShmGroup::EnsureNotAborted() const {
  if (localAborted_.load()) {
    throw Error(ErrorCode::kAborted, "communicator aborted: " + abortReason(), rank_, name_, CurrentOp());
  }
}

void ShmGroup::CheckPeersFinish(uint64_t seq) const {
  EnsureNotAborted();
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_ || !slots_[peer]->aborted.load(std::memory_order_acquire)) continue;
    // Aborted after finishing this op (a rank that returned from it may destroy its
    // communicator at once) is no failure of the op; aborted inside it is.
    if (slots_[peer]->completedSeq.load(std::memory_order_acquire) < seq) ThrowPeerAborted(peer);
  }
}

void ShmGroup::BeginOp(const Signature& signature, Deadline deadline, const RegisteredView& send) {
  EnsureNotAborted();
  mine_->sendView = send;
  mine_->regionsFreed = HostRegionRegistry::Instance().freedCount();
  Post(signature);
  Arrive();
  WaitAll(deadline);
  CheckSignatures(signature);
}

bool ShmGroup::AllRegistered() const {
  for (int r = 0; r < size_; ++r) {
    if (!slots_[r]->sendView.valid()) return false;
  }
  return true;
}

bool ShmGroup::AnyRegistered() const {
  for (int r = 0; r < size_; ++r) {
    if (slots_[r]->sendView.valid()) return true;
  }
  return false;
}

void ShmGroup::ResolvePeerInputs(const void* send, std::size_t bytes) {
  peerSend_.assign(size_, nullptr);
  peerRegions_.NextOp();
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) {
      peerSend_[r] = static_cast<const char*>(send);
      continue;
    }
    try {
      peerRegions_.NoteFreed(r, pids_[r], slots_[r]->regionsFreed);
      // One copy out of shared memory: the peer may rewrite its slot at any time.
      const RegisteredView view = slots_[r]->sendView;
      peerSend_[r] = peerRegions_.Resolve(r, pids_[r], view, bytes);
    } catch (const Error& e) {
      // A peer that aborted or exited after it posted its view takes its region
      // with it: report that, not the failed open or mmap it caused.
      if (slots_[r]->aborted.load(std::memory_order_acquire)) ThrowPeerAborted(r);
      if (PeerExited(r)) {
        throw Error(ErrorCode::kPeerLost,
                    "rank " + std::to_string(r) + " (pid " + std::to_string(pids_[r]) + ") exited during " +
                        CurrentOp() + " in group '" + name_ + "'",
                    rank_, name_, CurrentOp(), r);
      }
      throw Error(e.code(), e.what(), rank_, name_, CurrentOp(), r);
    }
  }
  directOps_.fetch_add(1);
}

bool ShmGroup::DirectEnabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("MICS_SHM_DIRECT");
    return !(env && std::string(env) == "0");
  }();
  return enabled;
}

void ShmGroup::EndOp(Deadline deadline) {
  Arrive();
  WaitAll(deadline);
}

void ShmGroup::Post(const Signature& signature) { mine_->signatures[signature.seq % 2] = signature; }

void ShmGroup::Arrive() {
  ++phase_;
  // seq_cst store then load, against the waiter's increment then re-check in
  // WaitPeer: either it sees the new phase or we see it waiting. Peers that only
  // spin cost no system call.
  mine_->phase.store(phase_, std::memory_order_seq_cst);
  if (mine_->waiters.load(std::memory_order_seq_cst) != 0) FutexWake(&mine_->phase);
}

bool ShmGroup::TryWaitAll(Clock::time_point until) {
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    while (!Reached(slots_[peer]->phase.load(std::memory_order_acquire), phase_)) {
      ThrowIfAborted(peer);
      if (Clock::now() >= until) return false;
      sched_yield();  // the peer may need this core to arrive
    }
  }
  return true;
}

void ShmGroup::ThrowIfAborted(int peer) const {
  if (slots_[peer]->aborted.load(std::memory_order_acquire)) ThrowPeerAborted(peer);
  if (localAborted_.load()) {
    throw Error(ErrorCode::kAborted, "communicator aborted: " + abortReason(), rank_, name_, CurrentOp());
  }
}

void ShmGroup::WaitAll(Deadline deadline) {
  for (int peer = 0; peer < size_; ++peer) {
    if (peer != rank_) WaitPeer(peer, phase_, deadline);
  }
}

void ShmGroup::WaitPeer(int peer, uint32_t target, Deadline deadline) {
  ShmControlSlot* slot = slots_[peer];
  int spins = 0;
  for (;;) {
    uint32_t value = slot->phase.load(std::memory_order_acquire);
    if (Reached(value, target)) return;
    ThrowIfAborted(peer);
    if (spins < 64) {  // a short yield-spin: peers on the same core need the CPU
      ++spins;
      sched_yield();
      continue;
    }
    slot->waiters.fetch_add(1, std::memory_order_seq_cst);
    // Re-read after announcing ourselves (see Arrive); FUTEX_WAIT itself returns at
    // once if the phase moved since `value`.
    value = slot->phase.load(std::memory_order_seq_cst);
    if (!Reached(value, target)) FutexWait(&slot->phase, value, 20);
    slot->waiters.fetch_sub(1, std::memory_order_seq_cst);
    if (Reached(slot->phase.load(std::memory_order_acquire), target)) return;
    if (PeerExited(peer)) {
      throw Error(ErrorCode::kPeerLost,
                  "rank " + std::to_string(peer) + " (pid " + std::to_string(pids_[peer]) +
                      ") exited during " + CurrentOp() + " in group '" + name_ + "'",
                  rank_, name_, CurrentOp(), peer);
    }
    if (Clock::now() >= deadline) {
      throw Error(ErrorCode::kTimeout,
                  "timed out in " + CurrentOp() + " in group '" + name_ + "' waiting for rank " +
                      std::to_string(peer),
                  rank_, name_, CurrentOp(), peer);
    }
  }
}

bool ShmGroup::PeerExited(int peer) const {
  if (pidfds_[peer].valid()) {
    pollfd p{pidfds_[peer].get(), POLLIN, 0};
    return poll(&p, 1, 0) > 0;  // a pidfd turns readable when the process terminates
  }
  return kill(pids_[peer], 0) != 0 && errno == ESRCH;
}

void ShmGroup::ThrowPeerAborted(int peer) const {
  // The peer's slot is its to write: copy each field once and trust none of them.
  const ShmControlSlot* slot = slots_[peer];
  char text[sizeof(slot->abortReason)];
  std::memcpy(text, slot->abortReason, sizeof(text));
  std::string reason(text, strnlen(text, sizeof(text)));
  throw RelayedError(slot->abortCode, slot->abortCulprit, std::move(reason), peer, size_, rank_, name_, CurrentOp());
}

void ShmGroup::CheckSignatures(const Signature& mine) const {
  bool allSame = true;
  for (int r = 0; r < size_ && allSame; ++r) {
    allSame = r == rank_ || Signature(slots_[r]->signatures[mine.seq % 2]) == mine;
  }
  if (allSame) return;
  SignatureCensus census(size_);
  bool same = true;
  for (int r = 0; r < size_; ++r) {
    census.Set(r, r == rank_ ? mine : Signature(slots_[r]->signatures[mine.seq % 2]));
    same = same && census.Get(r) == mine;
  }
  if (same) return;
  // Every rank sees every posted call, so all name the same deviant.
  throw Error(ErrorCode::kMismatch, census.Describe(name_), rank_, name_, mine.Describe(), census.Deviant());
}

void ShmGroup::Abort(const Error& failure) {
  if (abortClaimed_.exchange(true)) return;
  const std::string reason = failure.what();
  mine_->abortCode = static_cast<int32_t>(failure.code());
  mine_->abortCulprit = failure.peer() >= 0 ? failure.peer() : failure.rank();
  std::size_t n = std::min(reason.size(), sizeof(mine_->abortReason) - 1);
  std::memcpy(mine_->abortReason, reason.data(), n);
  mine_->abortReason[n] = '\0';
  mine_->aborted.store(1, std::memory_order_release);
  localAborted_.store(true, std::memory_order_release);
  // Waiters on our phase wake up and find the flag (the phase itself must not move:
  // a moved phase would read as "arrived").
  FutexWake(&mine_->phase);
}

std::string ShmGroup::abortReason() const {
  // Only after localAborted_ read true (acquire): the reason was written before it.
  return std::string(mine_->abortReason, strnlen(mine_->abortReason, sizeof(mine_->abortReason)));
}

}  // namespace mics
