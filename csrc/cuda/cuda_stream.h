// RAII CUDA stream bound to one device. Move-only. The header names no CUDA types
// beyond the opaque struct behind cudaStream_t, so csrc/napi and csrc/nccl can use
// it without the CUDA headers.
#pragma once

#include <functional>

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
  // Runs fn on a CUDA-owned thread once all work queued so far is done (it runs even
  // when that work failed; check with Query/Synchronize). fn must not call CUDA.
  // This is how a Promise can be settled without polling from the JS thread.
  void OnComplete(std::function<void()> fn) const;

 private:
  void Destroy() noexcept;

  CUstream_st* stream_ = nullptr;
  int device_ = -1;
};

}  // namespace mics::cuda
