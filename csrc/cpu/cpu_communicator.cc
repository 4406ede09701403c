#include "cpu/cpu_communicator.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include "cpu/ring_algorithms.h"
#include "cpu/shm_algorithms.h"
#include "cpu/shm_group.h"
#include "cpu/socket.h"
#include "cpu/tcp_ring.h"
#include "kernels/reduce.h"

namespace mics {

namespace {

// Microseconds a small op may yield-spin on the caller's thread for its peers.
std::chrono::microseconds InlineBudget() {
  static const std::chrono::microseconds budget = [] {
    const char* env = std::getenv("MICS_SHM_INLINE_US");
    if (!env || !*env) return std::chrono::microseconds(250);
    char* end = nullptr;
    const long value = std::strtol(env, &end, 10);
    // Bounded: the caller is the event loop. Anything unparsable keeps the default.
    if (end && *end == '\0' && value >= 0 && value <= 10000) return std::chrono::microseconds(value);
    return std::chrono::microseconds(250);
  }();
  return budget;
}

std::string RandomToken() {
  std::random_device rd;
  char buf[33];
  for (int i = 0; i < 4; ++i) snprintf(buf + 8 * i, 9, "%08x", static_cast<unsigned>(rd()));
  return std::string(buf, 32);
}

}  // namespace

CpuCommunicator::CpuCommunicator(const CpuCommunicatorOptions& options) : options_(options) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    throw Error(ErrorCode::kInvalidArgument,
                "rank " + std::to_string(options.rank) + " is not valid for a group of size " +
                    std::to_string(options.size) + ": use 0 <= rank < size");
  }
  self_.rank = options.rank;
  self_.node = options.node;
  self_.pid = static_cast<int>(getpid());
  self_.host = options.host;
  self_.token = RandomToken();
  if (options.size > 1) {
    // Both transports are prepared; Connect keeps the one the membership needs.
    tcp::Listener listener = tcp::Listen(options.host);
    self_.port = listener.port;
    ring_ = std::make_unique<TcpRing>(options.rank, options.size, options.name, std::move(listener), self_.token);
    shm_ = std::make_unique<ShmGroup>(options.rank, options.size, options.name);
    self_.shm = shm_->segmentName();
  }
}

CpuCommunicator::~CpuCommunicator() { Shutdown(); }

const char* CpuCommunicator::transport() const {
  switch (transport_.load()) {
    case Transport::kSelf: return "self";
    case Transport::kShm: return "shm";
    case Transport::kTcp: return "tcp";
    case Transport::kNone: return "none";
  }
  return "none";
}

uint64_t CpuCommunicator::directOps() const {
  std::lock_guard<std::mutex> lock(transportMutex_);
  return shm_ ? shm_->directOps() : 0;
}

void CpuCommunicator::Connect(const std::vector<std::string>& addresses, Deadline deadline) {
  if (static_cast<int>(addresses.size()) != options_.size) {
    throw Error(ErrorCode::kInvalidArgument,
                "expected " + std::to_string(options_.size) + " peer addresses, got " + std::to_string(addresses.size()),
                options_.rank, options_.name, "connect");
  }
  std::vector<PeerAddress> peers;
  bool oneNode = true;
  for (int r = 0; r < options_.size; ++r) {
    PeerAddress peer = PeerAddress::Parse(addresses[r]);
    if (peer.rank != r) {
      throw Error(ErrorCode::kInvalidArgument,
                  "peer address " + std::to_string(r) + " belongs to rank " + std::to_string(peer.rank),
                  options_.rank, options_.name, "connect");
    }
    oneNode = oneNode && peer.node == options_.node;
    peers.push_back(std::move(peer));
  }
  try {
    if (options_.size == 1) {
      transport_ = Transport::kSelf;
    } else if (oneNode) {
      std::unique_ptr<TcpRing> unused;
      {
        std::lock_guard<std::mutex> lock(transportMutex_);
        unused = std::move(ring_);
      }
      unused.reset();  // closes its listener outside the lock
      shm_->Connect(peers, deadline);
      transport_ = Transport::kShm;
    } else {
      std::unique_ptr<ShmGroup> unused;
      {
        std::lock_guard<std::mutex> lock(transportMutex_);
        unused = std::move(shm_);
      }
      unused.reset();
      ring_->Connect(peers, deadline);
      transport_ = Transport::kTcp;
    }
  } catch (const Error& e) {
    Fail(Error(e.code(), e.what(), options_.rank, options_.name, "connect", e.peer()));
    throw Error(e.code(), e.what(), options_.rank, options_.name, "connect", e.peer());
  }
}

void CpuCommunicator::Run(const Collective& c, Deadline deadline) {
  const std::optional<Signature> started = std::exchange(startedInline_, std::nullopt);
  {
    std::lock_guard<std::mutex> lock(failureMutex_);
    if (failure_) {
      throw Error(ErrorCode::kAborted,
                  "communicator '" + options_.name + "' was aborted earlier: " + failure_->what(), options_.rank,
                  options_.name, CollectiveName(c.type), failure_->peer());
    }
  }
  if (transport_ == Transport::kNone) {
    throw Error(ErrorCode::kInvalidArgument, "communicator '" + options_.name + "' is not connected",
                options_.rank, options_.name, CollectiveName(c.type));
  }
  if (started) {
    // The rest of a small op that RunInline started (it is the next op queued).
    const Signature sig = *started;
    try {
      shm_->WaitAll(deadline);
      shm::FinishSmall(*shm_, c, sig);
    } catch (const Error& e) {
      FailWith(e, sig);
    }
    return;
  }
  const Signature sig = Signature::Of(c, ++seq_);
  try {
    switch (transport_) {
      case Transport::kSelf:
        RunSelf(c);
        break;
      case Transport::kShm:
        shm_->SetCurrentOp(sig);
        if (shm::IsSmall(*shm_, c)) {
          shm::RunSmall(*shm_, c, sig, deadline);
          break;
        }
        switch (c.type) {
          case CollectiveType::kAllGather: shm::AllGather(*shm_, c, sig, deadline); break;
          case CollectiveType::kReduceScatter: shm::ReduceScatter(*shm_, c, sig, deadline); break;
          case CollectiveType::kAllReduce: shm::AllReduce(*shm_, c, sig, deadline); break;
          case CollectiveType::kBroadcast: shm::Broadcast(*shm_, c, sig, deadline); break;
          case CollectiveType::kBarrier: break;  // always small
        }
        break;
      case Transport::kTcp:
        ring_->SetCurrentOp(sig.Describe());
        switch (c.type) {
          case CollectiveType::kAllGather: ring::AllGather(*ring_, c, sig, deadline); break;
          case CollectiveType::kReduceScatter:
            if (c.accumulate) {
              RingReduceScatterAccumulate(c, sig, deadline);
            } else {
              ring::ReduceScatter(*ring_, c, sig, deadline);
            }
            break;
          case CollectiveType::kAllReduce: ring::AllReduce(*ring_, c, sig, deadline); break;
          case CollectiveType::kBroadcast: ring::Broadcast(*ring_, c, sig, deadline); break;
          case CollectiveType::kBarrier: ring::Barrier(*ring_, sig, deadline); break;
        }
        break;
      case Transport::kNone:
        break;
    }
  } catch (const Error& e) {
    FailWith(e, sig);
  }
}

Communicator::InlineResult CpuCommunicator::RunInline(const Collective& c, Deadline deadline) {
  const Transport transport = transport_;
  if (InlineBudget().count() == 0 || startedInline_) return InlineResult::kNotRun;
  if (transport != Transport::kShm && transport != Transport::kSelf) return InlineResult::kNotRun;
  {
    std::lock_guard<std::mutex> lock(failureMutex_);
    if (failure_) return InlineResult::kNotRun;  // Run reports it
  }
  if (transport == Transport::kSelf) {
    if (c.count * ElementSize(c.dtype) > shm::kSelfInlineBytes) return InlineResult::kNotRun;
    ++seq_;
    RunSelf(c);  // a copy, or nothing
    return InlineResult::kDone;
  }
  if (!shm::IsSmall(*shm_, c)) return InlineResult::kNotRun;
  const Signature sig = Signature::Of(c, ++seq_);
  try {
    shm_->SetCurrentOp(sig);
    shm::StartSmall(*shm_, c, sig);
    // Never past the op's own deadline: Run reports the timeout.
    if (!shm_->TryWaitAll(std::min(deadline, Clock::now() + InlineBudget()))) {
      startedInline_ = sig;
      return InlineResult::kStarted;
    }
    shm::FinishSmall(*shm_, c, sig);
  } catch (const Error& e) {
    FailWith(e, sig);
  }
  return InlineResult::kDone;
}

void CpuCommunicator::FailWith(const Error& e, const Signature& sig) {
  // Fill in who we are, then poison the communicator and tell the peers.
  Error full(e.code(), e.what(), options_.rank, options_.name, e.op().empty() ? sig.Describe() : e.op(), e.peer());
  Fail(full);
  throw full;
}

void CpuCommunicator::RunSelf(const Collective& c) {
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  if (c.type == CollectiveType::kBarrier || bytes == 0) return;
  if (c.accumulate) {  // recv += the one input (never in place)
    kernels::AddInto(c.dtype, c.recv, c.send, c.count);
    return;
  }
  // Every op on one rank is a copy (avg divides by 1; halves round-trip exactly).
  if (c.recv != c.send) std::memmove(c.recv, c.send, bytes);
}

void CpuCommunicator::RingReduceScatterAccumulate(const Collective& c, const Signature& sig, Deadline deadline) {
  // The ring's last step writes its result into recv: reduce into a block of our
  // own, then add it (the same bits as a reduce-scatter followed by a sum).
  const std::size_t bytes = c.count * ElementSize(c.dtype);
  if (accumulateScratch_.size() < bytes) accumulateScratch_.resize(bytes);
  Collective into = c;
  into.accumulate = false;
  into.recv = accumulateScratch_.data();
  ring::ReduceScatter(*ring_, into, sig, deadline);
  if (c.count == 0) return;
  kernels::AddInto(c.dtype, c.recv, accumulateScratch_.data(), c.count);
}

void CpuCommunicator::Fail(const Error& error) {
  {
    std::lock_guard<std::mutex> lock(failureMutex_);
    if (!failure_) failure_ = error;
  }
  // Also when Abort() recorded the failure first: the frames are sent from here.
  PropagateAbort();
}

void CpuCommunicator::PropagateAbort() {
  std::optional<Error> failure;
  {
    std::lock_guard<std::mutex> lock(failureMutex_);
    failure = failure_;
  }
  if (!failure) return;
  // The first failure travels, so every peer reports the original cause.
  if (shm_) shm_->Abort(*failure);
  if (ring_) {
    ring_->RequestAbort(*failure);
    ring_->SendAbort(*failure);
  }
}

void CpuCommunicator::Abort(const std::string& reason) {
  Error error(ErrorCode::kAborted, "rank " + std::to_string(options_.rank) + " aborted: " + reason, options_.rank,
              options_.name, "abort", options_.rank);
  {
    std::lock_guard<std::mutex> lock(failureMutex_);
    if (failure_) return;
    failure_ = error;
  }
  // Only thread-safe parts here: the progress thread may be inside an op (or in
  // Connect, dropping a transport: hence the lock). The TCP peers hear of it
  // through PropagateAbort() on the progress thread.
  std::lock_guard<std::mutex> lock(transportMutex_);
  if (shm_) shm_->Abort(error);
  if (ring_) ring_->RequestAbort(error);
}

bool CpuCommunicator::aborted() const {
  std::lock_guard<std::mutex> lock(failureMutex_);
  return failure_.has_value();
}

void CpuCommunicator::Shutdown() {
  std::optional<Error> failure;
  {
    std::lock_guard<std::mutex> lock(failureMutex_);
    failure = failure_;
  }
  Error reason = failure ? *failure
                         : Error(ErrorCode::kAborted,
                                 "rank " + std::to_string(options_.rank) + " destroyed communicator '" + options_.name + "'",
                                 options_.rank, options_.name, "destroy", options_.rank);
  std::unique_ptr<ShmGroup> shm;
  std::unique_ptr<TcpRing> ring;
  {
    std::lock_guard<std::mutex> lock(transportMutex_);
    shm = std::move(shm_);
    ring = std::move(ring_);
  }
  if (ring) ring->SendAbort(reason);
  if (shm) shm->Abort(reason);
}

}  // namespace mics
