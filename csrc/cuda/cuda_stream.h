// RAII CUDA stream bound to one device. Move-only. The header names no CUDA types
// beyond the opaque struct behind cudaStream_t, so csrc/napi and csrc/nccl can use
// it without the CUDA headers.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace mics::cuda {

class CudaEvent;

class CudaStream {
 public:
  // Creates a stream on `device` (-1: the current device). Non-blocking streams do not
  // synchronise with the legacy default stream. priority: 0 is the default; lower is
  // higher priority (cudaDeviceGetStreamPriorityRange), clamped by CUDA.
  explicit CudaStream(int device = -1, bool nonBlocking = true, int priority = 0);
  ~CudaStream();
  CudaStream(CudaStream&& other) noexcept;
  CudaStream& operator=(CudaStream&& other) noexcept;
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  CUstream_st* native() const { return stream_; }  // a cudaStream_t
  int device() const { return device_; }

  // Blocks the calling thread until all work queued so far is done; throws the first
  // error of that work as mics::Error.
  void Synchronize() const;
  // True when all work queued so far is done; throws on an error of that work.
  bool Query() const;
  // Work queued after this waits for `event` (which may be on another stream/device).
  void Wait(const CudaEvent& event) const;
  // Runs fn(status) on a CUDA-owned thread once all work queued so far is done:
  // status 0, or the cudaError_t of the work when it failed (a cudaStreamAddCallback:
  // unlike cudaLaunchHostFunc it still runs after a device error, so whatever waits
  // for it never waits forever). fn must not call CUDA, not even to describe the
  // error: hand status to another thread and build it there (CompletionError).
  // This is how a Promise settles without a synchronisation on the JS thread.
  void OnComplete(std::function<void(int status)> fn) const;
  // The mics::Error for a non-zero OnComplete status, `what` naming the work.
  static Error CompletionError(int status, const std::string& what);

 private:
  void Destroy() noexcept;

  CUstream_st* stream_ = nullptr;
  int device_ = -1;
};

}  // namespace mics::cuda
