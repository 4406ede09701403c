#include "nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "cuda/cuda_event.h"
#include "cuda/cuda_stream.h"
#include "cuda/device_tensor.h"
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
                      " device(s) (the device is LOCAL_RANK unless CUDA_VISIBLE_DEVICES narrows it)",
                  rank, name_, "init");
    }
    if (rank == 0) {
      nccl::UniqueId id{};
      Check(lib_.symbols().getUniqueId(&id), "ncclGetUniqueId");
      address_ = ToHex(id);
    }
  }

  ~NcclCommunicator() override { Shutdown(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  std::string address() const override { return address_; }
  const char* transport() const override { return comm_ ? "nccl" : "none"; }
  bool usesDeviceMemory() const override { return true; }

  void Connect(const std::vector<std::string>& addresses, Deadline deadline) override {
    nccl::UniqueId id{};
    if (addresses.empty() || !FromHex(addresses[0], &id)) {
      throw Error(ErrorCode::kInvalidArgument, "rank 0 did not publish a valid ncclUniqueId (256 hex digits)", rank_,
                  name_, "connect", 0);
    }
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    stream_ = std::make_unique<cuda::CudaStream>(device_);
    done_ = std::make_unique<cuda::CudaEvent>(device_);
    const auto& s = lib_.symbols();
    if (s.commInitRankConfig) {
      // Non-blocking: init returns at once, we poll, so a peer that never joins
      // ends in a timeout instead of a hang.
      nccl::Config config{};
      config.size = sizeof(nccl::Config);
      config.magic = nccl::kConfigMagic;
      config.version = static_cast<unsigned>(lib_.versionCode());
      config.blocking = 0;
      config.cgaClusterSize = config.minCTAs = config.maxCTAs = nccl::kConfigUndefInt;
      config.netName = nullptr;
      config.splitShare = nccl::kConfigUndefInt;
      nccl::Result r = s.commInitRankConfig(&comm_, size_, id, rank_, &config);
      if (r != nccl::kSuccess && r != nccl::kInProgress) Fail(r, "ncclCommInitRankConfig");
      WaitReady("ncclCommInitRankConfig", deadline);
    } else {
      Check(s.commInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    }
  }

  void Run(const Collective& c, Deadline deadline) override { RunGroup({c}, deadline); }

  void RunGroup(const std::vector<Collective>& collectives, Deadline deadline) override {
    if (failed_.load()) {
      throw Error(ErrorCode::kAborted, "communicator '" + name_ + "' was aborted earlier: " + FailureText(), rank_,
                  name_, "run");
    }
    if (!comm_) throw Error(ErrorCode::kInvalidArgument, "communicator '" + name_ + "' is not connected", rank_, name_);
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    const auto& s = lib_.symbols();
    const std::string what = collectives.size() == 1 ? CollectiveName(collectives[0].type) : "group";
    auto stream = reinterpret_cast<nccl::CudaStream>(stream_->native());
    Enqueue(s.groupStart(), "ncclGroupStart");
    for (const Collective& c : collectives) {
      const nccl::DataType type = ToNccl(c.dtype);
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
          if (!barrierScratch_.defined()) barrierScratch_ = cuda::DeviceTensor::Allocate(DType::kF32, 1, device_);
          void* p = barrierScratch_.data();
          Enqueue(s.allReduce(p, p, 1, nccl::kFloat32, nccl::kSum, comm_, stream), "ncclAllReduce(barrier)");
          break;
        }
      }
    }
    nccl::Result r = s.groupEnd();
    if (r == nccl::kInProgress) WaitReady("ncclGroupEnd", deadline);
    else if (r != nccl::kSuccess) Fail(r, "ncclGroupEnd");
    done_->Record(*stream_);
    WaitDone(what, deadline);
  }

  void Abort(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_.load()) return;
    failure_ = "rank " + std::to_string(rank_) + " aborted: " + reason;
    failed_.store(true);  // the progress thread sees it and calls ncclCommAbort
  }
  bool aborted() const override { return failed_.load(); }

  void Shutdown() override {
    if (!comm_) return;
    const auto& s = lib_.symbols();
    cudaSetDevice(device_);
    if (failed_.load()) s.commAbort(comm_);
    else if (s.commDestroy(comm_) != nccl::kSuccess) s.commAbort(comm_);
    comm_ = nullptr;
  }

 private:
  std::string FailureText() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_;
  }

  [[noreturn]] void Fail(nccl::Result result, const std::string& call) {
    const char* text = lib_.symbols().getErrorString ? lib_.symbols().getErrorString(result) : "unknown";
    std::string message = call + " failed in group '" + name_ + "': " + text + " (ncclResult " +
                          std::to_string(static_cast<int>(result)) + ")";
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
      throw Error(ErrorCode::kSystem, call + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err), rank_,
                  name_, call);
    }
  }

  void AbortComm(const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (failure_.empty()) failure_ = reason;
    }
    failed_.store(true);
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

  void WaitReady(const std::string& what, Deadline deadline) {
    Poll(what, deadline, [&] {
      nccl::Result async = nccl::kInProgress;
      lib_.symbols().commGetAsyncError(comm_, &async);
      return async == nccl::kSuccess;
    });
  }

  void WaitDone(const std::string& what, Deadline deadline) {
    Poll(what, deadline, [&] { return done_->Query(); });
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
  cuda::DeviceTensor barrierScratch_;
  std::mutex mutex_;
  std::atomic<bool> failed_{false};
  std::string failure_;
};

}  // namespace

std::shared_ptr<Communicator> CreateNcclCommunicator(int rank, int size, int device, std::string name) {
  return std::make_shared<NcclCommunicator>(rank, size, device, std::move(name));
}

}  // namespace mics
