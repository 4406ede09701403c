// RAII CUDA event bound to one device. Move-only; no CUDA headers needed to use it.
#pragma once

struct CUevent_st;  // cudaEvent_t is CUevent_st*

namespace mics::cuda {

class CudaStream;

class CudaEvent {
 public:
  // timing: the event can measure elapsed time (slower to record).
  // blockingSync: Synchronize() sleeps the thread instead of spinning on a core.
  explicit CudaEvent(int device = -1, bool timing = false, bool blockingSync = false);
  ~CudaEvent();
  CudaEvent(CudaEvent&& other) noexcept;
  CudaEvent& operator=(CudaEvent&& other) noexcept;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  CUevent_st* native() const { return event_; }  // a cudaEvent_t
  int device() const { return device_; }

  // Captures the work queued on `stream` so far.
  void Record(const CudaStream& stream);
  // True when the captured work is done (also true for a never-recorded event).
  bool Query() const;
  // Blocks until the captured work is done; throws that work's first error.
  void Synchronize() const;
  // Milliseconds between `start` (recorded earlier) and this event; both need timing.
  float ElapsedMsSince(const CudaEvent& start) const;

 private:
  void Destroy() noexcept;

  CUevent_st* event_ = nullptr;
  int device_ = -1;
};

}  // namespace mics::cuda
