// ThreadSanitizer harness for the CPU backend (scripts/sanitizers.sh builds it with
// -fsanitize=thread; it is not part of the addon). A stock node binary cannot load
// a TSan-instrumented addon, so this drives the same C++ the addon runs, the way
// csrc/napi does: every rank is a CpuCommunicator with its own ProgressThread that
// runs Connect and the collectives, while the rank's "JS thread" (the thread that
// owns it here) calls Abort, directOps, transport and aborted concurrently, and
// allocates and frees HostRegions. Ranks are threads of one process, so shared
// memory, the TCP ring (2 emulated nodes) and direct reads of HostRegions all run
// for real; TSan sees every thread of every rank.
//
// Every scenario checks its results (exact values, error codes, culprit ranks) and
// prints one line; the exit status is 0 only if all passed (TSan exits 66 on a report).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "comm/progress_thread.h"
#include "core/error.h"
#include "cpu/cpu_communicator.h"
#include "cpu/host_region_registry.h"

using namespace mics;
using namespace std::chrono_literals;

namespace {

// A reusable barrier for the rank threads (std::barrier is C++20).
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const uint64_t round = round_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      ++round_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return round_ != round; });
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int n_;
  int waiting_ = 0;
  uint64_t round_ = 0;
};

// The outcome of one op run on a progress thread, as a Promise would settle.
class Pending {
 public:
  void Settle(std::optional<Error> error) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::move(error);
    settled_ = true;
    cv_.notify_all();
  }
  // Waits; the error, or nullopt when the op succeeded.
  std::optional<Error> Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return settled_; });
    return error_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool settled_ = false;
  std::optional<Error> error_;
};

// What every rank of one run shares: the published addresses.
struct Job {
  Job(int n, std::vector<int> nodes) : size(n), nodes(std::move(nodes)), addresses(n), barrier(n) {}
  int size;
  std::vector<int> nodes;
  std::vector<std::string> addresses;
  Barrier barrier;
};

// One rank as csrc/napi sees it: the communicator and its progress thread.
struct Rank {
  Rank(Job& job, int rank, const std::string& name) : job(job), rank(rank) {
    CpuCommunicatorOptions o;
    o.rank = rank;
    o.size = job.size;
    o.node = job.nodes[rank];
    o.host = "127.0.0.1";
    o.name = name;
    comm = std::make_shared<CpuCommunicator>(o);
    thread = std::make_unique<ProgressThread>("tsan-" + std::to_string(rank));
  }
  ~Rank() {
    thread->Stop();
    comm->Shutdown();
  }

  // Runs `work` on the progress thread; the Pending holds its error, if any.
  // (Not std::promise: its exception_ptr is reference-counted inside the
  // uninstrumented libstdc++, which TSan would report as a race.)
  std::shared_ptr<Pending> Enqueue(std::function<void()> work) {
    auto pending = std::make_shared<Pending>();
    thread->Enqueue([pending, work = std::move(work)] {
      std::optional<Error> error;
      try {
        work();
      } catch (const Error& e) {
        error = e;
      } catch (const std::exception& e) {
        error = Error(ErrorCode::kInternal, e.what());
      }
      pending->Settle(std::move(error));
    });
    return pending;
  }

  std::shared_ptr<Pending> Connect(std::chrono::milliseconds timeout = 20s) {
    job.addresses[rank] = comm->address();
    job.barrier.Wait();
    const std::vector<std::string> addresses = job.addresses;
    auto comm = this->comm;
    return Enqueue([comm, addresses, timeout] { comm->Connect(addresses, Clock::now() + timeout); });
  }

  std::shared_ptr<Pending> Run(const Collective& c, std::chrono::milliseconds timeout = 20s) {
    auto comm = this->comm;
    return Enqueue([comm, c, timeout] { comm->Run(c, Clock::now() + timeout); });
  }

  // As CommunicatorWrap::Collective with nothing queued: a small op may run on this
  // (the "JS") thread; whatever it started is finished on the progress thread.
  std::shared_ptr<Pending> RunInlineFirst(const Collective& c, std::chrono::milliseconds timeout = 20s) {
    const Deadline deadline = Clock::now() + timeout;
    Communicator::InlineResult result = Communicator::InlineResult::kNotRun;
    try {
      result = comm->RunInline(c, deadline);
    } catch (const Error& e) {
      auto failed = std::make_shared<Pending>();
      failed->Settle(e);
      return failed;
    }
    if (result == Communicator::InlineResult::kDone) {
      auto done = std::make_shared<Pending>();
      done->Settle(std::nullopt);
      return done;
    }
    auto comm = this->comm;
    return Enqueue([comm, c, deadline] { comm->Run(c, deadline); });
  }

  // As CommunicatorWrap::Abort: record on this thread, tell the peers from the progress thread.
  void Abort(const std::string& reason) {
    comm->Abort(reason);
    auto comm = this->comm;
    thread->Enqueue([comm] { comm->PropagateAbort(); });
  }

  Job& job;
  int rank;
  std::shared_ptr<CpuCommunicator> comm;
  std::unique_ptr<ProgressThread> thread;
};

std::atomic<int> failures{0};

void Check(bool ok, const std::string& what) {
  if (!ok) {
    failures.fetch_add(1);
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

std::optional<Error> ErrorOf(const std::shared_ptr<Pending>& pending) { return pending->Wait(); }

// Runs body(rank) on one thread per rank of a job with these nodes.
void RunJob(const std::vector<int>& nodes, const std::function<void(Job&, int)>& body) {
  Job job(static_cast<int>(nodes.size()), nodes);
  std::vector<std::thread> threads;
  for (int r = 0; r < job.size; ++r) threads.emplace_back([&job, r, &body] { body(job, r); });
  for (auto& t : threads) t.join();
}

const std::vector<int> kOneNode = {0, 0, 0, 0};
const std::vector<int> kTwoNodes = {0, 0, 1, 1};

const char* Transport(const std::vector<int>& nodes) { return nodes == kOneNode ? "shm" : "tcp"; }

Collective Op(CollectiveType type, const void* send, void* recv, std::size_t count, DType dtype,
              ReduceOp op = ReduceOp::kSum, int root = 0) {
  Collective c;
  c.type = type;
  c.send = send;
  c.recv = recv;
  c.count = count;
  c.dtype = dtype;
  c.op = op;
  c.root = root;
  return c;
}

// Collectives with exact results, on host and on registered (allocHost) memory,
// while the JS thread polls the communicator and churns HostRegions.
void Collectives(const std::vector<int>& nodes) {
  const int before = failures.load();
  RunJob(nodes, [&](Job& job, int rank) {
    Rank me(job, rank, "ops");
    auto connected = me.Connect();
    Check(!ErrorOf(connected), "connect");
    Check(std::string(me.comm->transport()) == Transport(nodes), "transport");
    std::atomic<bool> done{false};
    std::thread js([&] {  // what JS may do while ops run
      HostRegionRegistry& registry = HostRegionRegistry::Instance();
      while (!done.load()) {
        char* scratch = registry.Allocate(4096);
        scratch[0] = 1;
        (void)me.comm->directOps();
        (void)me.comm->transport();
        (void)me.comm->aborted();
        registry.Free(scratch);
        std::this_thread::sleep_for(1ms);
      }
    });
    const int n = job.size;
    for (int round = 0; round < 3; ++round) {
      const bool registered = round % 2 == 1;
      // Small ops (data inline) in rounds 0 and 1, staged or direct ones in round 2;
      // small counts: TSan slows every access down.
      const std::size_t count = round < 2 ? 3000 + round : 20000;
      HostRegionRegistry& registry = HostRegionRegistry::Instance();
      auto buffer = [&](std::size_t bytes) -> float* {
        return registered ? reinterpret_cast<float*>(registry.Allocate(bytes)) : new float[bytes / sizeof(float)];
      };
      auto release = [&](float* p) {
        if (registered) registry.Free(reinterpret_cast<char*>(p));
        else delete[] p;
      };
      float* in = buffer(count * n * sizeof(float));
      float* out = buffer(count * n * sizeof(float));
      for (std::size_t i = 0; i < count * n; ++i) in[i] = static_cast<float>(rank + 1);
      auto f = me.Run(Op(CollectiveType::kAllReduce, in, out, count, DType::kF32));
      Check(!ErrorOf(f), "allReduce");
      Check(out[0] == n * (n + 1) / 2.0f && out[count - 1] == n * (n + 1) / 2.0f, "allReduce value");
      f = me.Run(Op(CollectiveType::kAllGather, in, out, count, DType::kF32));
      Check(!ErrorOf(f), "allGather");
      for (int r = 0; r < n; ++r) Check(out[r * count] == r + 1.0f, "allGather value");
      f = me.Run(Op(CollectiveType::kReduceScatter, in, out, count, DType::kF32, ReduceOp::kMax));
      Check(!ErrorOf(f), "reduceScatter");
      Check(out[0] == static_cast<float>(n), "reduceScatter value");
      f = me.Run(Op(CollectiveType::kBroadcast, in, out, count, DType::kF32, ReduceOp::kSum, n - 1));
      Check(!ErrorOf(f), "broadcast");
      Check(out[count - 1] == static_cast<float>(n), "broadcast value");
      f = me.Run(Op(CollectiveType::kBarrier, nullptr, nullptr, 0, DType::kU8));
      Check(!ErrorOf(f), "barrier");
      release(in);
      release(out);
    }
    done.store(true);
    js.join();
    job.barrier.Wait();  // nobody shuts down while a peer may still read its memory
  });
  std::printf("collectives (%s): %s\n", Transport(nodes), failures.load() > before ? "FAILED" : "ok");
}

// Small ops started on the calling thread (RunInline), each finished there or on
// the progress thread, mixed with staged ops queued behind them, while another
// thread polls the communicator; then an abort from that thread.
void InlineSmallOps(const std::vector<int>& nodes) {
  const int before = failures.load();
  RunJob(nodes, [&](Job& job, int rank) {
    Rank me(job, rank, "inline");
    Check(!ErrorOf(me.Connect()), "connect");
    const int n = job.size;
    std::vector<float> small(8), out(8 * n), big(40000 * n);
    for (int k = 0; k < 200; ++k) {
      std::fill(small.begin(), small.end(), static_cast<float>(rank + k));
      auto f = me.RunInlineFirst(Op(CollectiveType::kAllReduce, small.data(), out.data(), small.size(), DType::kF32));
      Check(!ErrorOf(f), "inline allReduce");
      Check(out[7] == static_cast<float>(n * (n - 1) / 2 + n * k), "inline allReduce value");
      if (k % 50 == 49) {  // a staged op behind it, then a small one queued behind that
        auto staged = me.Run(Op(CollectiveType::kAllReduce, big.data(), big.data(), big.size() / n, DType::kF32));
        auto queued = me.Run(Op(CollectiveType::kBarrier, nullptr, nullptr, 0, DType::kU8));
        Check(!ErrorOf(staged) && !ErrorOf(queued), "staged and queued ops after inline ones");
      }
    }
    // An abort while ranks loop on inline ops: every rank fails promptly, none hangs.
    std::thread js([&] {
      std::this_thread::sleep_for(20ms);
      if (rank == 1) me.Abort("test abort during inline ops");
    });
    bool failed = false;
    for (int k = 0; k < 100000 && !failed; ++k) {
      failed = ErrorOf(me.RunInlineFirst(Op(CollectiveType::kAllReduce, small.data(), out.data(), small.size(), DType::kF32), 10s))
                   .has_value();
    }
    Check(failed, "inline ops fail after an abort");
    js.join();
    job.barrier.Wait();
  });
  std::printf("inline small ops (%s): %s\n", Transport(nodes), failures.load() > before ? "FAILED" : "ok");
}

// Abort() on the JS thread while the progress thread is inside Connect, which
// drops the transport it does not need: the race of issue 10 item 4.
void AbortDuringConnect(const std::vector<int>& nodes) {
  const int before = failures.load();
  for (int iteration = 0; iteration < 6; ++iteration) {
    RunJob(nodes, [&](Job& job, int rank) {
      Rank me(job, rank, "connecting");
      auto connected = me.Connect(5s);
      std::this_thread::sleep_for(std::chrono::microseconds(200 * iteration * (rank + 1)));
      me.Abort("abort while connecting");
      (void)me.comm->directOps();
      (void)ErrorOf(connected);  // may succeed or fail: both are fine, no race is the point
      Check(me.comm->aborted(), "aborted after Abort");
      auto later = me.Run(Op(CollectiveType::kBarrier, nullptr, nullptr, 0, DType::kU8), 5s);
      auto error = ErrorOf(later);
      Check(error && error->code() == ErrorCode::kAborted, "later op says aborted");
    });
  }
  std::printf("abort during connect (%s): %s\n", Transport(nodes), failures.load() > before ? "FAILED" : "ok");
}

// Rank 0's JS thread aborts while every rank's progress thread is inside an op.
void AbortDuringOp(const std::vector<int>& nodes) {
  const int before = failures.load();
  RunJob(nodes, [&](Job& job, int rank) {
    Rank me(job, rank, "aborting");
    auto connected = me.Connect();
    Check(!ErrorOf(connected), "connect");
    std::vector<float> data(100000, 1.0f);
    if (rank == 0) {
      std::this_thread::sleep_for(50ms);
      me.Abort("stopping on purpose");
      Check(me.comm->aborted(), "aborted");
    } else {
      auto f = me.Run(Op(CollectiveType::kAllReduce, data.data(), data.data(), data.size(), DType::kF32), 20s);
      auto error = ErrorOf(f);
      Check(error && (error->code() == ErrorCode::kAborted || error->code() == ErrorCode::kPeerLost),
            "peers learn of the abort");
      Check(error && std::string(error->what()).find("stopping on purpose") != std::string::npos,
            "with the reason: " + std::string(error ? error->what() : "none"));
    }
    job.barrier.Wait();
  });
  std::printf("abort during op (%s): %s\n", Transport(nodes), failures.load() > before ? "FAILED" : "ok");
}

// Rank `deviant` calls another count; over TCP the census probe runs.
void Mismatch(const std::vector<int>& nodes, int deviant) {
  const int before = failures.load();
  RunJob(nodes, [&](Job& job, int rank) {
    Rank me(job, rank, "mismatch");
    auto connected = me.Connect();
    Check(!ErrorOf(connected), "connect");
    std::vector<float> data(16, 1.0f);
    const std::size_t count = rank == deviant ? 9 : 8;
    auto f = me.Run(Op(CollectiveType::kAllReduce, data.data(), data.data(), count, DType::kF32), 20s);
    auto error = ErrorOf(f);
    Check(error && error->code() == ErrorCode::kMismatch && error->peer() == deviant,
          "mismatch names rank " + std::to_string(deviant) + ": " + (error ? error->what() : "none"));
    job.barrier.Wait();
  });
  std::printf("mismatch, rank %d deviates (%s): %s\n", deviant, Transport(nodes), failures.load() > before ? "FAILED" : "ok");
}

// Rank `silent` never calls; over TCP the timeout probe runs.
void Timeout(const std::vector<int>& nodes, int silent) {
  const int before = failures.load();
  RunJob(nodes, [&](Job& job, int rank) {
    Rank me(job, rank, "timeout");
    auto connected = me.Connect();
    Check(!ErrorOf(connected), "connect");
    if (rank != silent) {
      std::vector<float> data(16, 1.0f);
      auto f = me.Run(Op(CollectiveType::kAllReduce, data.data(), data.data(), data.size(), DType::kF32), 1500ms);
      auto error = ErrorOf(f);
      Check(error && error->code() == ErrorCode::kTimeout && error->peer() == silent,
            "timeout names rank " + std::to_string(silent) + ": " + (error ? error->what() : "none"));
    }
    job.barrier.Wait();
  });
  std::printf("timeout, rank %d silent (%s): %s\n", silent, Transport(nodes), failures.load() > before ? "FAILED" : "ok");
}

}  // namespace

int main() {
  for (const auto& nodes : {kOneNode, kTwoNodes}) {
    Collectives(nodes);
    InlineSmallOps(nodes);
    AbortDuringConnect(nodes);
    AbortDuringOp(nodes);
    Mismatch(nodes, 1);
    Timeout(nodes, 2);
  }
  Mismatch(kTwoNodes, 0);
  Timeout(kTwoNodes, 0);
  std::printf("%s\n", failures.load() ? "tsan harness: FAILED" : "tsan harness: all scenarios passed");
  return failures.load() ? 1 : 0;
}
