#include "nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "cuda/cuda_event.h"
#include "cuda/cuda_stream.h"
#include "nccl/call_signature.h"
#include "nccl/nccl_config.h"
#include "nccl/nccl_library.h"

namespace mics {

namespace {

nccl::DataType ToNccl(DType dtype) {
  switch (dtype) {
    case DType::kF32: return nccl::kFloat32;
    case DType::kF64: return nccl::kFloat64;
    case DType::kF16: return nccl::kFloat16;
    case DType::kBF16: return nccl::kBfloat16;
    case DType::kI8: return nccl::kInt8;
    case DType::kU8: return nccl::kUint8;
    case DType::kI32: return nccl::kInt32;
    case DType::kI64: return nccl::kInt64;
  }
  return nccl::kUint8;
}

nccl::RedOp ToNccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return nccl::kSum;
    case ReduceOp::kAvg: return nccl::kAvg;
    case ReduceOp::kMax: return nccl::kMax;
    case ReduceOp::kMin: return nccl::kMin;
    case ReduceOp::kProd: return nccl::kProd;
  }
  return nccl::kSum;
}

ErrorCode CodeOf(nccl::Result result) {
  switch (result) {
    case nccl::kRemoteError: return ErrorCode::kPeerLost;  // a peer exited or the network failed
    case nccl::kTimeout: return ErrorCode::kTimeout;
    case nccl::kInvalidArgument:
    case nccl::kInvalidUsage: return ErrorCode::kInvalidArgument;
    case nccl::kSystemError:
    case nccl::kUnhandledCudaError: return ErrorCode::kSystem;
    default: return ErrorCode::kInternal;
  }
}

std::string ToHex(const nccl::UniqueId& id) {
  static const char* digits = "0123456789abcdef";
  std::string text;
  for (unsigned char byte : id.internal) {
    text.push_back(digits[byte >> 4]);
    text.push_back(digits[byte & 15]);
  }
  return text;
}

bool FromHex(const std::string& text, nccl::UniqueId* id) {
  if (text.size() != 2 * nccl::kUniqueIdBytes) return false;
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < nccl::kUniqueIdBytes; ++i) {
    int hi = value(text[2 * i]), lo = value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    id->internal[i] = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

// A positive number of milliseconds from the environment, else `fallback`.
double EnvMs(const char* name, double fallback) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  double ms = std::strtod(text, &end);
  return end && *end == '\0' && ms > 0 ? ms : fallback;
}

// The k-th enqueue (1-based) that MICS_NCCL_TEST_INVALID_ENQUEUE asks to fail, or 0.
// Test only: that enqueue passes NCCL an invalid datatype, so NCCL itself refuses it
// inside the open group and the recovery path (end the group, then abort) runs for real.
long InjectedInvalidEnqueue() {
  const char* text = std::getenv("MICS_NCCL_TEST_INVALID_ENQUEUE");
  return text && *text ? std::strtol(text, nullptr, 10) : 0;
}

// ncclCommInitRank (NCCL < 2.14, no non-blocking init) blocks until every rank has
// joined: it runs on a helper thread so that the caller's deadline still holds.
// On a timeout the helper is left to finish on its own and aborts what it made.
struct BlockingInit {
  std::mutex mutex;
  std::condition_variable done;
  bool finished = false;
  bool abandoned = false;
  nccl::Result result = nccl::kInProgress;
  nccl::Comm comm = nullptr;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(int rank, int size, int device, std::string name)
      : rank_(rank), size_(size), device_(device), name_(std::move(name)), lib_(nccl::NcclLibrary::Get()) {
    if (!lib_.loaded()) {
      std::string searched;
      for (const auto& p : lib_.searched()) searched += (searched.empty() ? "" : ", ") + p;
      throw Error(ErrorCode::kUnavailable, "backend 'nccl': " + lib_.error() + " (searched: " + searched + ")", rank,
                  name_, "init");
    }
    if (lib_.versionCode() < kMinNcclVersionCode) {
      nccl::Version v = nccl::DecodeVersion(lib_.versionCode());
      throw Error(ErrorCode::kUnavailable,
                  "backend 'nccl': " + lib_.path() + " is NCCL " + std::to_string(v.major) + "." +
                      std::to_string(v.minor) + "." + std::to_string(v.patch) + "; mics needs 2.10 or newer",
                  rank, name_, "init");
    }
    if (size < 1 || rank < 0 || rank >= size) {
      throw Error(ErrorCode::kInvalidArgument,
                  "rank " + std::to_string(rank) + " is not valid for a group of size " + std::to_string(size));
    }
    checkMode_ = nccl::ParseCheckMode(std::getenv("MICS_NCCL_CHECK"));
    injectInvalidEnqueue_ = InjectedInvalidEnqueue();
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      cudaGetLastError();
      throw Error(ErrorCode::kUnavailable,
                  std::string("backend 'nccl': no CUDA device (") +
                      (err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports none") + ")",
                  rank, name_, "init");
    }
    if (device < 0 || device >= count) {
      throw Error(ErrorCode::kInvalidArgument,
                  "CUDA device " + std::to_string(device) + " is not valid: this process sees " + std::to_string(count) +
                      " device(s) (the device is LOCAL_RANK unless MICS_CUDA_DEVICE or CUDA_VISIBLE_DEVICES says otherwise)",
                  rank, name_, "init");
    }
    if (rank == 0) {
      nccl::UniqueId id{};
      Check(lib_.symbols().getUniqueId(&id), "ncclGetUniqueId");
      address_ = ToHex(id);
    }
  }

  ~NcclCommunicator() override {
    // Normally Shutdown() ran on the progress thread. If not, abort (never blocks on peers).
    if (comm_) {
      cudaSetDevice(device_);
      EndOpenGroup();
      lib_.symbols().commAbort(comm_);
      comm_ = nullptr;
    }
    KeepRetainedForever();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  std::string address() const override { return address_; }
  const char* transport() const override { return comm_ ? "nccl" : "none"; }
  bool usesDeviceMemory() const override { return true; }

  bool CanSplit() const {
    const char* env = std::getenv("MICS_NCCL_SPLIT");
    return lib_.symbols().commSplit != nullptr && !(env && std::string(env) == "0");
  }

  void Connect(const std::vector<std::string>& addresses, Deadline deadline) override {
    nccl::UniqueId id{};
    if (addresses.empty() || !FromHex(addresses[0], &id)) {
      throw Error(ErrorCode::kInvalidArgument, "rank 0 did not publish a valid ncclUniqueId (256 hex digits)", rank_,
                  name_, "connect", 0);
    }
    PrepareDevice();
    const auto& s = lib_.symbols();
    if (s.commInitRankConfig) {
      // Non-blocking: init returns at once, we poll, so a peer that never joins
      // ends in a timeout instead of a hang.
      nccl::Config config = nccl::MakeConfig(false);
      nccl::Result r = s.commInitRankConfig(&comm_, size_, id, rank_, &config);
      if (r != nccl::kSuccess && r != nccl::kInProgress) Fail(r, "ncclCommInitRankConfig");
      WaitReady(comm_, "ncclCommInitRankConfig", deadline);
    } else {
      comm_ = BlockingInitRank(id, deadline);
    }
  }

  void Run(const Collective& c, Deadline deadline) override { RunGroup({c}, deadline); }

  void RunGroup(const std::vector<Collective>& collectives, Deadline deadline) override {
    EnsureUsable("run");
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    FreeRetainedIfIdle();
    const uint64_t seq = seq_++;
    const std::string what = collectives.size() == 1 ? CollectiveName(collectives[0].type) : "group";
    if (size_ > 1 && checkMode_ != nccl::CheckMode::kOff) {
      nccl::CallSignature mine = nccl::CallSignature::Of(collectives, seq);
      if (checkMode_ == nccl::CheckMode::kAll || shapes_.Insert(mine)) CheckSignatures(mine, what, deadline);
    }
    const auto& s = lib_.symbols();
    auto stream = reinterpret_cast<nccl::CudaStream>(stream_->native());
    Enqueue(s.groupStart(), "ncclGroupStart");
    groupOpen_ = true;
    for (const Collective& c : collectives) {
      nccl::DataType type = ToNccl(c.dtype);
      if (injectInvalidEnqueue_ > 0 && ++enqueues_ == injectInvalidEnqueue_) type = static_cast<nccl::DataType>(255);
      switch (c.type) {
        case CollectiveType::kAllGather:
          Enqueue(s.allGather(c.send, c.recv, c.count, type, comm_, stream), "ncclAllGather");
          break;
        case CollectiveType::kReduceScatter:
          Enqueue(s.reduceScatter(c.send, c.recv, c.count, type, ToNccl(c.op), comm_, stream), "ncclReduceScatter");
          break;
        case CollectiveType::kAllReduce:
          Enqueue(s.allReduce(c.send, c.recv, c.count, type, ToNccl(c.op), comm_, stream), "ncclAllReduce");
          break;
        case CollectiveType::kBroadcast:
          Enqueue(s.broadcast(c.send, c.recv, c.count, type, c.root, comm_, stream), "ncclBroadcast");
          break;
        case CollectiveType::kBarrier: {
          // NCCL has no barrier: a one-element all-reduce completes on every rank only
          // once every rank has issued it.
          void* p = scratch_.data();
          Enqueue(s.allReduce(p, p, 1, nccl::kFloat32, nccl::kSum, comm_, stream), "ncclAllReduce(barrier)");
          break;
        }
      }
    }
    groupOpen_ = false;  // ncclGroupEnd closes the group whatever it returns
    nccl::Result r = s.groupEnd();
    if (r == nccl::kInProgress) WaitReady(comm_, "ncclGroupEnd", deadline);
    else if (r != nccl::kSuccess) Fail(r, "ncclGroupEnd");
    WaitStream(what, deadline);
  }

  void RunHolding(const std::vector<Collective>& collectives, std::vector<cuda::DeviceTensor> buffers,
                  Deadline deadline) {
    try {
      RunGroup(collectives, deadline);
    } catch (...) {
      // The device may still run what was enqueued (aborted kernels wind down): keep
      // the memory until the stream is idle.
      for (auto& b : buffers) retained_.push_back(std::move(b));
      throw;
    }
  }

  void Split(Communicator* childBase, int color, int key, Deadline deadline) {
    EnsureUsable("split");
    auto* child = static_cast<NcclCommunicator*>(childBase);
    if (color >= 0 && child == nullptr) {
      throw Error(ErrorCode::kInvalidArgument, "split: a color >= 0 needs a child communicator", rank_, name_, "split");
    }
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    const auto& s = lib_.symbols();
    // NCCL writes the new handle asynchronously (non-blocking parent), possibly after
    // a timeout made us give up: the slot is never freed for that reason (8 bytes).
    auto* out = new nccl::Comm(nullptr);
    nccl::Config config = nccl::MakeConfig(false);
    nccl::Result r = s.commSplit(comm_, color < 0 ? nccl::kSplitNoColor : color, key, out, &config);
    if (r != nccl::kSuccess && r != nccl::kInProgress) Fail(r, "ncclCommSplit");
    nccl::Comm made = nullptr;
    Poll("ncclCommSplit", deadline, [&] {
      nccl::Result parent = nccl::kInProgress;
      s.commGetAsyncError(comm_, &parent);
      if (parent != nccl::kSuccess && parent != nccl::kInProgress) Fail(parent, "ncclCommSplit");
      if (parent != nccl::kSuccess) return false;
      if (color < 0) return true;
      made = __atomic_load_n(out, __ATOMIC_ACQUIRE);
      if (made == nullptr) return false;
      nccl::Result state = nccl::kInProgress;
      s.commGetAsyncError(made, &state);
      if (state != nccl::kSuccess && state != nccl::kInProgress) {
        std::string message = "ncclCommSplit failed in group '" + name_ + "' for the new group '" + child->name_ +
                              "': " + lib_.Describe(state, made);
        s.commAbort(made);
        throw Error(CodeOf(state), message, rank_, name_, "split");
      }
      return state == nccl::kSuccess;
    });
    delete out;
    if (child != nullptr) child->Adopt(made);
  }

  void Abort(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_.load()) return;
    failure_ = "rank " + std::to_string(rank_) + " aborted: " + reason;
    failed_.store(true);  // the progress thread sees it and calls ncclCommAbort
  }
  bool aborted() const override { return failed_.load(); }

  // Progress thread, after abort(): aborting the NCCL communicator now makes the
  // peers' ops fail soon (their connections to us close) instead of at their timeout.
  void PropagateAbort() override {
    if (failed_.load() && comm_) AbortComm(FailureText());
  }

  // Progress thread (the last task). Finalize, wait for the peers with a deadline,
  // then destroy; abort when that fails or takes too long. Never touches the handle
  // after ncclCommDestroy or ncclCommAbort (both free it, whatever they return).
  void Shutdown() override {
    if (comm_) {
      cudaSetDevice(device_);
      const auto& s = lib_.symbols();
      if (failed_.load()) {
        AbortComm(FailureText());
      } else if (s.commFinalize) {
        const Deadline deadline = DeadlineAfter(EnvMs("MICS_NCCL_DESTROY_TIMEOUT_MS", 10000));
        nccl::Result r = s.commFinalize(comm_);
        nccl::Result state = r;
        if (r == nccl::kSuccess || r == nccl::kInProgress) {
          auto sleep = std::chrono::microseconds(50);
          for (;;) {
            state = nccl::kInProgress;
            s.commGetAsyncError(comm_, &state);
            if (state != nccl::kInProgress || Clock::now() >= deadline) break;
            std::this_thread::sleep_for(sleep);
            sleep = std::min(sleep * 2, std::chrono::microseconds(2000));
          }
        }
        if (state == nccl::kSuccess) {
          s.commDestroy(comm_);
          comm_ = nullptr;
        } else {
          AbortComm(state == nccl::kInProgress ? "destroy: ncclCommFinalize did not finish in time"
                                               : "destroy: ncclCommFinalize failed: " + lib_.Describe(state, comm_));
        }
      } else {
        s.commDestroy(comm_);  // NCCL < 2.14: no finalize
        comm_ = nullptr;
      }
    }
    if (stream_) {
      // Bounded: aborted kernels wind down quickly; a stuck device keeps its memory.
      const Deadline idleBy = Clock::now() + std::chrono::seconds(5);
      while (!retained_.empty() && !StreamIdle() && Clock::now() < idleBy) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      FreeRetainedIfIdle();
    }
    KeepRetainedForever();
  }

 private:
  void EnsureUsable(const char* what) {
    if (failed_.load()) {
      throw Error(ErrorCode::kAborted, "communicator '" + name_ + "' was aborted earlier: " + FailureText(), rank_,
                  name_, what);
    }
    if (!comm_) throw Error(ErrorCode::kInvalidArgument, "communicator '" + name_ + "' is not connected", rank_, name_, what);
  }

  // Stream, completion event and scratch (barrier value, signatures) on our device.
  void PrepareDevice() {
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    stream_ = std::make_unique<cuda::CudaStream>(device_);
    done_ = std::make_unique<cuda::CudaEvent>(device_);
    scratch_ = cuda::DeviceTensor::Allocate(
        DType::kU8, std::max<std::size_t>(sizeof(float), sizeof(nccl::CallSignature) * static_cast<std::size_t>(size_)),
        device_);
  }

  // The child of a split: takes the handle ncclCommSplit made (on the parent's thread,
  // before anything runs on this communicator).
  void Adopt(nccl::Comm comm) {
    PrepareDevice();
    comm_ = comm;
  }

  nccl::Comm BlockingInitRank(const nccl::UniqueId& id, Deadline deadline) {
    auto state = std::make_shared<BlockingInit>();
    const auto init = lib_.symbols().commInitRank;
    const auto abort = lib_.symbols().commAbort;
    const int size = size_, rank = rank_, device = device_;
    std::thread([state, init, abort, id, size, rank, device] {
      cudaSetDevice(device);
      nccl::Comm comm = nullptr;
      nccl::Result r = init(&comm, size, id, rank);
      std::lock_guard<std::mutex> lock(state->mutex);
      state->finished = true;
      state->result = r;
      if (state->abandoned) {
        if (r == nccl::kSuccess && comm) abort(comm);
      } else {
        state->comm = comm;
      }
      state->done.notify_all();
    }).detach();
    std::unique_lock<std::mutex> lock(state->mutex);
    // In slices, so that abort() is seen too.
    while (!state->finished) {
      if (failed_.load() || Clock::now() >= deadline) {
        state->abandoned = true;
        const bool aborted = failed_.load();
        std::string message = aborted ? "communicator aborted during ncclCommInitRank: " + FailureText()
                                      : "timed out in ncclCommInitRank in group '" + name_ + "' (a rank did not take part)";
        if (!aborted) RecordFailure(message);
        throw Error(aborted ? ErrorCode::kAborted : ErrorCode::kTimeout, message, rank_, name_, "connect");
      }
      state->done.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (state->result != nccl::kSuccess) Fail(state->result, "ncclCommInitRank");
    return state->comm;
  }

  // Ranks all-gather the signature of this call and compare it before the call runs.
  void CheckSignatures(const nccl::CallSignature& mine, const std::string& what, Deadline deadline) {
    const std::size_t bytes = sizeof(nccl::CallSignature);
    char* base = static_cast<char*>(scratch_.data());
    cudaStream_t cuda = stream_->native();
    // On our stream, before the all-gather. From pageable memory the call returns once
    // `mine` has been staged, so the stack variable may go.
    CheckCuda(cudaMemcpyAsync(base + bytes * static_cast<std::size_t>(rank_), &mine, bytes, cudaMemcpyHostToDevice, cuda),
              "cudaMemcpyAsync (signature)");
    auto stream = reinterpret_cast<nccl::CudaStream>(cuda);
    nccl::Result r = lib_.symbols().allGather(base + bytes * static_cast<std::size_t>(rank_), base, bytes,
                                              nccl::kUint8, comm_, stream);
    Enqueue(r, "ncclAllGather(signature)");
    // Non-blocking: the op is on the stream only once the communicator says Success.
    if (r == nccl::kInProgress) WaitReady(comm_, "ncclAllGather(signature)", deadline);
    WaitStream(what + " (signature check)", deadline);
    // Into pageable memory: returns once copied (the all-gather is done: waited above).
    std::vector<nccl::CallSignature> all(static_cast<std::size_t>(size_));
    CheckCuda(cudaMemcpyAsync(all.data(), base, bytes * all.size(), cudaMemcpyDeviceToHost, cuda),
              "cudaMemcpyAsync (signatures)");
    CheckCuda(cudaStreamSynchronize(cuda), "cudaStreamSynchronize (signatures)");
    if (auto mismatch = nccl::FindMismatch(all, rank_, name_)) {
      AbortComm(mismatch->what());
      throw *mismatch;
    }
  }

  std::string FailureText() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_;
  }

  void RecordFailure(const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (failure_.empty()) failure_ = reason;
    }
    failed_.store(true);
  }

  [[noreturn]] void Fail(nccl::Result result, const std::string& call) {
    std::string message = call + " failed in group '" + name_ + "': " + lib_.Describe(result, comm_);
    AbortComm(message);
    throw Error(CodeOf(result), message, rank_, name_, call);
  }

  void Check(nccl::Result result, const std::string& call) {
    if (result != nccl::kSuccess) Fail(result, call);
  }
  // Non-blocking communicators may answer InProgress from an enqueue.
  void Enqueue(nccl::Result result, const std::string& call) {
    if (result != nccl::kSuccess && result != nccl::kInProgress) Fail(result, call);
  }

  void CheckCuda(cudaError_t err, const std::string& call) {
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw Error(ErrorCode::kSystem, call + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err), rank_,
                  name_, call);
    }
  }

  // A failed enqueue leaves the group open (this thread's group depth 1): NCCL would
  // only queue an abort issued inside it, and the communicator would leak. End it first.
  void EndOpenGroup() {
    if (!groupOpen_) return;
    groupOpen_ = false;
    lib_.symbols().groupEnd();  // reports the enqueue's error again; already handled
  }

  void AbortComm(const std::string& reason) {
    RecordFailure(reason);
    EndOpenGroup();
    if (comm_) {
      lib_.symbols().commAbort(comm_);
      comm_ = nullptr;
    }
  }

  // Polls with a growing sleep: 20 us at first (small ops finish fast), 1 ms at most.
  template <typename Done>
  void Poll(const std::string& what, Deadline deadline, Done done) {
    auto sleep = std::chrono::microseconds(20);
    for (;;) {
      if (done()) return;
      if (failed_.load()) {
        std::string reason = FailureText();
        AbortComm(reason);
        throw Error(ErrorCode::kAborted, "communicator aborted during " + what + ": " + reason, rank_, name_, what);
      }
      nccl::Result async = nccl::kSuccess;
      lib_.symbols().commGetAsyncError(comm_, &async);
      if (async != nccl::kSuccess && async != nccl::kInProgress) Fail(async, what);
      if (Clock::now() >= deadline) {
        std::string message = "timed out in " + what + " in group '" + name_ + "' (a rank did not take part)";
        AbortComm(message);
        throw Error(ErrorCode::kTimeout, message, rank_, name_, what);
      }
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }

  void WaitReady(nccl::Comm comm, const std::string& what, Deadline deadline) {
    Poll(what, deadline, [&] {
      nccl::Result async = nccl::kInProgress;
      lib_.symbols().commGetAsyncError(comm, &async);
      return async == nccl::kSuccess;
    });
  }

  // Records the completion event after the work queued so far and waits for it. A
  // CUDA error seen there (a failed kernel; sticky errors break the whole context)
  // aborts the communicator like an NCCL error.
  void WaitStream(const std::string& what, Deadline deadline) {
    auto cudaFailed = [&](const Error& e) {
      std::string message = what + " failed in group '" + name_ + "' on the device: " + e.what();
      AbortComm(message);
      return Error(e.code() == ErrorCode::kUnavailable ? ErrorCode::kUnavailable : ErrorCode::kSystem, message, rank_,
                   name_, what);
    };
    try {
      done_->Record(*stream_);
    } catch (const Error& e) {
      throw cudaFailed(e);
    }
    Poll(what, deadline, [&] {
      try {
        return done_->Query();
      } catch (const Error& e) {
        throw cudaFailed(e);
      }
    });
  }

  bool StreamIdle() {
    try {
      return stream_->Query();
    } catch (...) {
      return false;  // a broken context: its memory is not reused anyway
    }
  }

  void FreeRetainedIfIdle() {
    if (!retained_.empty() && StreamIdle()) retained_.clear();
  }

  // Allocations the device may still use when we must let go: never freed.
  void KeepRetainedForever() {
    if (retained_.empty()) return;
    new std::vector<cuda::DeviceTensor>(std::move(retained_));
    retained_.clear();
  }

  int rank_;
  int size_;
  int device_;
  std::string name_;
  const nccl::NcclLibrary& lib_;
  std::string address_;
  nccl::Comm comm_ = nullptr;
  std::unique_ptr<cuda::CudaStream> stream_;
  std::unique_ptr<cuda::CudaEvent> done_;
  cuda::DeviceTensor scratch_;
  bool groupOpen_ = false;  // progress thread only
  uint64_t seq_ = 0;
  nccl::CheckMode checkMode_ = nccl::CheckMode::kNew;
  nccl::ShapeSet shapes_;
  long injectInvalidEnqueue_ = 0;
  long enqueues_ = 0;
  std::vector<cuda::DeviceTensor> retained_;
  std::mutex mutex_;
  std::atomic<bool> failed_{false};
  std::string failure_;
};

NcclCommunicator* AsNccl(Communicator& comm, const char* what) {
  auto* nccl = dynamic_cast<NcclCommunicator*>(&comm);
  if (!nccl) throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": not an NCCL communicator");
  return nccl;
}

}  // namespace

std::shared_ptr<Communicator> CreateNcclCommunicator(int rank, int size, int device, std::string name) {
  return std::make_shared<NcclCommunicator>(rank, size, device, std::move(name));
}

bool NcclCanSplit(const Communicator& comm) {
  const auto* nccl = dynamic_cast<const NcclCommunicator*>(&comm);
  return nccl != nullptr && nccl->CanSplit();
}

void NcclSplit(Communicator& parent, Communicator* child, int color, int key, Deadline deadline) {
  NcclCommunicator* p = AsNccl(parent, "split");
  if (child != nullptr) AsNccl(*child, "split");
  p->Split(child, color, key, deadline);
}

void RunNcclHolding(Communicator& comm, const std::vector<Collective>& collectives,
                    std::vector<cuda::DeviceTensor> buffers, Deadline deadline) {
  AsNccl(comm, "run")->RunHolding(collectives, std::move(buffers), deadline);
}

}  // namespace mics
