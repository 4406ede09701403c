// The interface every backend implements. Setup is two steps around an address
// exchange through the store (done in TypeScript): publish address(), gather every
// member's, then Connect() (collective). Run() executes one collective to
// completion on the calling thread, which is always the communicator's own
// progress thread (see ProgressThread); Abort() may be called from any thread and
// makes a running or later Run() fail promptly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/collective.h"

namespace mics {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const std::string& name() const = 0;  // the group's name, used in every error

  // What this rank publishes for its peers (an address, or NCCL's unique id on rank 0).
  virtual std::string address() const = 0;
  // Collective over the members: addresses[r] is what rank r published.
  virtual void Connect(const std::vector<std::string>& addresses, Deadline deadline) = 0;
  // How the members talk: "self", "shm", "tcp", "nccl"; "none" before Connect.
  virtual const char* transport() const = 0;
  // True when collectives take device pointers (NCCL), false for host memory.
  virtual bool usesDeviceMemory() const = 0;
  // Collectives so far that read the peers' registered inputs in place instead
  // of staging them (CPU backend over shared memory; see cpu/host_region.h).
  virtual uint64_t directOps() const { return 0; }

  // Throws mics::Error with rank, group and op filled in.
  virtual void Run(const Collective& collective, Deadline deadline) = 0;
  // A small op may run on the caller's thread (the JS thread) when nothing is
  // queued on the progress thread, so that a loop of small collectives costs no
  // hand-off between the two threads. kDone: the op completed (or threw, with the
  // communicator failed as Run does); kStarted: it was started but peers were not
  // there within a short budget: the caller must queue Run() with the same
  // collective next, which finishes it; kNotRun: nothing happened, queue Run().
  enum class InlineResult { kNotRun, kStarted, kDone };
  virtual InlineResult RunInline(const Collective& collective, Deadline deadline) {
    (void)collective;
    (void)deadline;
    return InlineResult::kNotRun;
  }

  // Several collectives issued as one group (NCCL's group call); by default in order.
  virtual void RunGroup(const std::vector<Collective>& collectives, Deadline deadline) {
    for (const Collective& c : collectives) Run(c, deadline);
  }

  // Idempotent; the first reason is kept and reported by every later call.
  virtual void Abort(const std::string& reason) = 0;
  virtual bool aborted() const = 0;
  // Progress thread only: tells the peers about a failure recorded by Abort(), so
  // that they fail now rather than at their timeout. Idempotent.
  virtual void PropagateAbort() {}
  // Tells peers (best effort) and releases resources; the progress thread is idle.
  virtual void Shutdown() = 0;
};

}  // namespace mics
