// The ranks of one communicator that all live on one node. Each rank owns a
// shared-memory segment: a control slot (phase counter, posted op signature,
// abort flag) and two staging buffers. Data moves through the staging buffers
// with plain memcpy in small pieces that stay in the shared cache; nobody reads
// another process's private memory, so no ptrace permission is needed (a
// cross-memory read, process_vm_readv, measured half the speed of memcpy here).
//
// Synchronisation is a phase counter per rank: Arrive() bumps ours and wakes
// futex waiters; WaitAll() waits until every peer's counter reached ours, while
// watching each peer's process (pidfd) and abort flag and the op's deadline.
//
// Inputs allocated as HostRegions (allocHost) skip the staging: each rank posts
// where its input lies with its signature, and when every rank did, the
// algorithms read the peers' inputs in place (shm_direct.cc).
//
// Small ops (shm_small.cc) carry their data inline: each rank's segment has two
// small-op areas after the control slot, used by the parity of the op's sequence
// number like the signatures, so a small op needs a single sync.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/collective.h"
#include "core/error.h"
#include "cpu/host_region_registry.h"
#include "cpu/peer_address.h"
#include "cpu/peer_regions.h"
#include "cpu/shm_segment.h"
#include "cpu/unique_fd.h"

namespace mics {

struct alignas(64) ShmControlSlot {
  std::atomic<uint32_t> phase;    // futex word, bumped once per sync point
  std::atomic<uint32_t> aborted;  // 1 once this rank aborted; reason below
  int32_t pid;
  std::atomic<uint32_t> waiters;  // peers in (or entering) FUTEX_WAIT on `phase`: Arrive wakes only then
  // The op this rank is in, by the parity of its sequence number (valid after the
  // op's first Arrive). Two, because a one-sync op lets a rank post op k+1 while a
  // slower peer still compares op k; it can post op k+2 only after every peer
  // arrived in op k+1, i.e. finished reading op k.
  Signature signatures[2];
  uint64_t stagingBytes;          // each staging buffer's size: peers must agree
  int32_t abortCode;              // ErrorCode of the failure that aborted this rank
  int32_t abortCulprit;           // the rank it blamed, or -1
  char abortReason[472];
  RegisteredView sendView;        // this op's input in registered memory (or invalid)
  uint64_t regionsFreed;          // HostRegions this process has freed so far
  // The sequence number of the last small op this rank finished: a peer that sees
  // us aborted can tell whether we finished the op it is in (then moved on, e.g.
  // destroyed the communicator) or left it unfinished.
  std::atomic<uint64_t> completedSeq;
};

// The slot is a wire format between the processes of a job; the trust tests in
// test/comm/failures.test.ts (worker.js, SLOT) forge fields at these offsets.
static_assert(offsetof(ShmControlSlot, phase) == 0 && offsetof(ShmControlSlot, aborted) == 4 &&
                  offsetof(ShmControlSlot, waiters) == 12 && offsetof(ShmControlSlot, signatures) == 16 &&
                  offsetof(ShmControlSlot, stagingBytes) == 64 && offsetof(ShmControlSlot, abortCode) == 72 &&
                  offsetof(ShmControlSlot, abortCulprit) == 76 && offsetof(ShmControlSlot, abortReason) == 80 &&
                  offsetof(ShmControlSlot, sendView) == 552 && offsetof(ShmControlSlot, regionsFreed) == 584 &&
                  offsetof(ShmControlSlot, completedSeq) == 592,
              "ShmControlSlot layout");

class ShmGroup {
 public:
  // stagingBytes: size of each of the two staging buffers (MICS_SHM_STAGING_BYTES).
  ShmGroup(int rank, int size, std::string name, std::size_t stagingBytes = DefaultStagingBytes());
  static std::size_t DefaultStagingBytes();
  ~ShmGroup();

  // Created before the address exchange: its name goes into our PeerAddress.
  const std::string& segmentName() const { return segment_.name(); }
  // Maps every peer's segment, opens a pidfd per peer, and unlinks our segment
  // once all peers have mapped it.
  void Connect(const std::vector<PeerAddress>& peers, Deadline deadline);

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Every staged op: BeginOp (post signature and buffers, sync, compare
  // signatures), the algorithm's reads with Arrive/WaitAll between dependent
  // phases, then EndOp (sync: nobody returns while a peer may still read its
  // buffers). Small ops: Post, Arrive, WaitAll (or TryWaitAll), CheckSignatures.
  // send: where this op's input lies in registered memory, posted with the
  // signature (an invalid view when it does not, or when direct reads are off).
  void BeginOp(const Signature& signature, Deadline deadline, const RegisteredView& send = {});
  void EndOp(Deadline deadline);

  // Direct reads of the peers' registered inputs. After BeginOp, the same answer
  // on every rank:
  bool AllRegistered() const;
  bool AnyRegistered() const;
  // After BeginOp with AllRegistered(): maps the peers' inputs (`bytes` each, the
  // size the matching signatures imply); rank r's input is then PeerSend(r)
  // (ours for r = rank).
  void ResolvePeerInputs(const void* send, std::size_t bytes);
  const char* PeerSend(int r) const { return peerSend_[r]; }
  static bool DirectEnabled();  // MICS_SHM_DIRECT, default on
  uint64_t directOps() const { return directOps_.load(); }

  // Per-op protocol used by the algorithms in shm_*.cc.
  void Post(const Signature& signature);
  void Arrive();
  void WaitAll(Deadline deadline);
  // WaitAll that gives up (returns false) at `until` instead of timing out; it
  // still throws when a peer aborted. Used on the caller's thread, where it yields
  // but never sleeps.
  bool TryWaitAll(Clock::time_point until);
  void CheckSignatures(const Signature& mine) const;  // throws kMismatch naming both calls
  void EnsureNotAborted() const;                       // throws kAborted once we aborted
  // Small ops, after their sync: throws the failure of a peer that aborted without
  // finishing op `seq`; then records that we finished it.
  void CheckPeersFinish(uint64_t seq) const;
  void MarkFinished(uint64_t seq) { mine_->completedSeq.store(seq, std::memory_order_release); }
  std::size_t stagingBytes() const { return stagingBytes_; }
  char* Staging(int peer, int buffer) const { return staging_[peer] + buffer * stagingBytes_; }
  // Bytes a rank can post inline with a small op, and rank `peer`'s area for the
  // op with sequence number `seq`.
  static constexpr std::size_t kSmallBytes = 64 * 1024;
  char* Small(int peer, uint64_t seq) const { return small_[peer] + (seq % 2) * kSmallBytes; }

  // Marks our slot (with the failure's code, culprit and text) and wakes every
  // waiter; thread-safe and idempotent.
  void Abort(const Error& failure);
  bool aborted() const { return localAborted_.load(); }
  std::string abortReason() const;

  // The op being run, so errors raised deep in a wait say which op it was. Kept
  // as the signature: the text is built only for an error.
  void SetCurrentOp(const Signature& signature) {
    currentSig_ = signature;
    connecting_ = false;
  }

 private:
  void WaitPeer(int peer, uint32_t target, Deadline deadline);
  void ThrowIfAborted(int peer) const;
  [[noreturn]] void ThrowPeerAborted(int peer) const;
  bool PeerExited(int peer) const;

  int rank_;
  int size_;
  std::string name_;
  ShmSegment segment_;
  ShmControlSlot* mine_ = nullptr;
  std::vector<ShmSegment> peerSegments_;
  std::vector<ShmControlSlot*> slots_;
  std::vector<char*> staging_;  // per rank: its two staging buffers, back to back
  std::vector<char*> small_;    // per rank: its two small-op areas, back to back
  std::size_t stagingBytes_;
  std::vector<UniqueFd> pidfds_;
  std::vector<int> pids_;
  uint32_t phase_ = 0;
  // Abort may run on the JS thread while the progress thread waits: the first
  // caller claims abortClaimed_, writes the reason into our slot, and only then
  // releases localAborted_, so a reader that sees the flag also sees the reason.
  std::atomic<bool> abortClaimed_{false};
  std::atomic<bool> localAborted_{false};
  std::string CurrentOp() const { return connecting_ ? std::string("connect") : currentSig_.Describe(); }
  Signature currentSig_{};
  bool connecting_ = true;
  PeerRegions peerRegions_;
  std::vector<const char*> peerSend_;
  std::atomic<uint64_t> directOps_{0};
};

}  // namespace mics
