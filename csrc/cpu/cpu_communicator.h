// The CPU backend's communicator. Created in two steps around the address
// exchange (done by the TypeScript layer through the store):
//   CpuCommunicator comm(options);         // binds a listener, creates a shm slot
//   publish comm.address(), gather all     // store
//   comm.Connect(addresses, deadline);     // collective: picks the transport
// Ranks that all share one node talk through shared memory (shm_*.cc); a
// communicator that spans nodes is a TCP ring (ring_*.cc); one rank copies locally.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/error.h"
#include "cpu/peer_address.h"

namespace mics {

class ShmGroup;
class TcpRing;

struct CpuCommunicatorOptions {
  int rank = 0;
  int size = 1;
  int node = 0;            // the launcher's node rank
  std::string host;        // address to listen on and advertise
  std::string name;        // group name for errors ("world", "partition[0]", ...)
};

class CpuCommunicator : public Communicator {
 public:
  explicit CpuCommunicator(const CpuCommunicatorOptions& options);
  ~CpuCommunicator() override;

  std::string address() const override { return self_.Serialize(); }
  void Connect(const std::vector<std::string>& addresses, Deadline deadline) override;

  int rank() const override { return options_.rank; }
  int size() const override { return options_.size; }
  const std::string& name() const override { return options_.name; }
  // "self", "shm" or "tcp" once connected.
  const char* transport() const override;
  bool usesDeviceMemory() const override { return false; }
  uint64_t directOps() const override;

  void Run(const Collective& collective, Deadline deadline) override;
  // Small ops on shared memory (shm::IsSmall), with a yield-spin of at most
  // MICS_SHM_INLINE_US microseconds (default 250; 0 turns it off) for the peers.
  InlineResult RunInline(const Collective& collective, Deadline deadline) override;
  void Abort(const std::string& reason) override;
  bool aborted() const override;
  void PropagateAbort() override;
  void Shutdown() override;

 private:
  enum class Transport { kNone, kSelf, kShm, kTcp };
  void RunSelf(const Collective& c);
  void RingReduceScatterAccumulate(const Collective& c, const Signature& sig, Deadline deadline);
  void Fail(const Error& error);
  [[noreturn]] void FailWith(const Error& e, const Signature& sig);

  CpuCommunicatorOptions options_;
  PeerAddress self_;
  // Read by JS-thread getters while Connect sets it on the progress thread.
  std::atomic<Transport> transport_{Transport::kNone};
  // Connect (progress thread) drops the transport it does not need while Abort and
  // directOps (JS thread) may use them: the pointers change only under this lock.
  // Neither side holds it while waiting: Abort only sets flags and wakes waiters.
  mutable std::mutex transportMutex_;
  std::unique_ptr<ShmGroup> shm_;
  std::unique_ptr<TcpRing> ring_;
  uint64_t seq_ = 0;
  // A small op RunInline started and the next Run() finishes. seq_ and this are
  // used by one thread at a time: the caller runs an op inline only when the
  // progress thread has nothing queued, and queues the rest behind it.
  std::optional<Signature> startedInline_;
  // The ring reduce-scatter's result before it is added (accumulate): ops run on one thread at a time.
  std::vector<char> accumulateScratch_;
  mutable std::mutex failureMutex_;
  std::optional<Error> failure_;
};

}  // namespace mics
