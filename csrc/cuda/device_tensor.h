// A typed 1-D tensor in device memory: an allocation (shared), an element offset
// into it, a length and a dtype. Views share the allocation (zero-copy); the memory
// is freed when the last tensor or view referring to it is destroyed.
//
// Copies and fills are enqueued on a CudaStream (asynchronous; errors of the work
// itself surface at the next synchronisation). Upload and Download are synchronous:
// they return once the bytes have arrived (pageable host memory makes an "async"
// copy synchronous anyway), ordered after the work already queued on the stream.
//
// No CUDA types in this header: csrc/napi and csrc/nccl include it freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/dtype.h"

namespace mics::cuda {

class CudaStream;
class DeviceAllocation;

class DeviceTensor {
 public:
  // An undefined tensor (no memory); defined() is false. Used for "absent".
  DeviceTensor() = default;

  // Allocates `length` elements of `dtype` on `device` (-1: the current device).
  // Throws Error(kUnavailable) naming why when there is no CUDA device, kSystem when
  // out of memory. Memory is uninitialised.
  static DeviceTensor Allocate(DType dtype, std::size_t length, int device = -1);

  bool defined() const { return allocation_ != nullptr; }
  DType dtype() const { return dtype_; }
  std::size_t length() const { return length_; }
  std::size_t byteLength() const { return length_ * ElementSize(dtype_); }
  // Elements from the start of the allocation (0 unless this is a view).
  std::size_t offset() const { return offset_; }
  int device() const;
  // Device address of element 0 (nullptr for an empty allocation).
  void* data() const;

  // Elements [offset, offset + length) of this tensor, sharing its memory.
  // Throws kInvalidArgument when the range does not fit.
  DeviceTensor View(std::size_t offset, std::size_t length) const;

  // Whether the two tensors' bytes overlap (never true for empty tensors).
  bool Overlaps(const DeviceTensor& other) const;
  // Same allocation, same byte range and dtype.
  bool SameRange(const DeviceTensor& other) const;
  bool SharesAllocationWith(const DeviceTensor& other) const { return allocation_ == other.allocation_; }

  // Host -> device, `bytes` must equal byteLength(). Returns when done.
  void Upload(const void* host, std::size_t bytes, const CudaStream& stream) const;
  // Device -> host, `bytes` must equal byteLength(). Returns when done.
  void Download(void* host, std::size_t bytes, const CudaStream& stream) const;
  // Device -> host, enqueued on `stream` only: `host` must be pinned memory (else
  // CUDA copies synchronously) and stay valid until the stream reaches this point.
  void EnqueueDownload(void* host, std::size_t bytes, const CudaStream& stream) const;
  // this <- src (same dtype and length; may be on another device; the two ranges
  // must not partly overlap). Enqueued on `stream` (on this tensor's device).
  void CopyFrom(const DeviceTensor& src, const CudaStream& stream) const;
  // Sets every element to `value` converted to dtype (floats round to nearest even;
  // integer dtypes need an integral value in range, else kInvalidArgument).
  void Fill(double value, const CudaStream& stream) const;
  // Integer fill for i8/u8/i32/i64 (exact for all of int64; range-checked).
  void FillInteger(int64_t value, const CudaStream& stream) const;

  // "f32[1024] on cuda:0 (offset 256)" for messages.
  std::string Describe() const;

 private:
  void RequireDefined(const char* op) const;
  void RequireStream(const CudaStream& stream, const char* op) const;
  void FillPattern(uint64_t pattern, const CudaStream& stream) const;

  std::shared_ptr<DeviceAllocation> allocation_;
  DType dtype_ = DType::kF32;
  std::size_t offset_ = 0;
  std::size_t length_ = 0;
};

}  // namespace mics::cuda
