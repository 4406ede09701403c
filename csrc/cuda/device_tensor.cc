#include "cuda/device_tensor.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"
#include "cuda/cuda_error.h"
#include "cuda/cuda_stream.h"
#include "cuda/device.h"
#include "cuda/device_allocation.h"
#include "cuda/device_guard.h"
#include "cuda/fill.h"

namespace mics::cuda {

namespace {

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

template <typename T>
uint64_t Bits(T value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

bool IsIntegerType(DType dtype) {
  return dtype == DType::kI8 || dtype == DType::kU8 || dtype == DType::kI32 || dtype == DType::kI64;
}

void IntegerRange(DType dtype, int64_t* lo, int64_t* hi) {
  switch (dtype) {
    case DType::kI8: *lo = -128; *hi = 127; return;
    case DType::kU8: *lo = 0; *hi = 255; return;
    case DType::kI32: *lo = std::numeric_limits<int32_t>::min(); *hi = std::numeric_limits<int32_t>::max(); return;
    default: *lo = std::numeric_limits<int64_t>::min(); *hi = std::numeric_limits<int64_t>::max(); return;
  }
}

}  // namespace

DeviceTensor DeviceTensor::Allocate(DType dtype, std::size_t length, int device) {
  const std::string what = "DeviceTensor.alloc";
  int resolved = ResolveDevice(device, what);
  const std::size_t elem = ElementSize(dtype);
  if (length > std::numeric_limits<std::size_t>::max() / elem) {
    throw Invalid(what + ": length " + std::to_string(length) + " overflows the byte size");
  }
  DeviceTensor t;
  t.allocation_ = std::make_shared<DeviceAllocation>(resolved, length * elem);
  t.dtype_ = dtype;
  t.length_ = length;
  return t;
}

int DeviceTensor::device() const { return allocation_ ? allocation_->device() : -1; }

void* DeviceTensor::data() const {
  if (!allocation_ || allocation_->data() == nullptr) return nullptr;
  return static_cast<char*>(allocation_->data()) + offset_ * ElementSize(dtype_);
}

std::string DeviceTensor::Describe() const {
  if (!allocation_) return "undefined DeviceTensor";
  std::string s = std::string(DTypeName(dtype_)) + "[" + std::to_string(length_) + "] on cuda:" +
                  std::to_string(device());
  if (offset_ != 0) s += " (offset " + std::to_string(offset_) + ")";
  return s;
}

void DeviceTensor::RequireDefined(const char* op) const {
  if (!allocation_) throw Invalid(std::string(op) + ": the tensor is undefined (released or never allocated)");
}

void DeviceTensor::RequireStream(const CudaStream& stream, const char* op) const {
  if (stream.device() != device()) {
    throw Invalid(std::string(op) + ": the stream is on device " + std::to_string(stream.device()) +
                  " but the tensor is on device " + std::to_string(device()));
  }
}

DeviceTensor DeviceTensor::View(std::size_t offset, std::size_t length) const {
  RequireDefined("DeviceTensor.view");
  if (offset > length_ || length > length_ - offset) {
    throw Invalid("DeviceTensor.view(" + std::to_string(offset) + ", " + std::to_string(length) +
                  "): the range does not fit in " + Describe() + ": need offset + length <= " +
                  std::to_string(length_));
  }
  DeviceTensor v = *this;
  v.offset_ = offset_ + offset;
  v.length_ = length;
  return v;
}

bool DeviceTensor::Overlaps(const DeviceTensor& other) const {
  if (!SharesAllocationWith(other) || !defined() || byteLength() == 0 || other.byteLength() == 0) return false;
  std::size_t a0 = offset_ * ElementSize(dtype_), a1 = a0 + byteLength();
  std::size_t b0 = other.offset_ * ElementSize(other.dtype_), b1 = b0 + other.byteLength();
  return a0 < b1 && b0 < a1;
}

bool DeviceTensor::SameRange(const DeviceTensor& other) const {
  return SharesAllocationWith(other) && dtype_ == other.dtype_ && offset_ == other.offset_ &&
         length_ == other.length_;
}

void DeviceTensor::Upload(const void* host, std::size_t bytes, const CudaStream& stream) const {
  RequireDefined("DeviceTensor.upload");
  RequireStream(stream, "DeviceTensor.upload");
  if (bytes != byteLength()) {
    throw Invalid("DeviceTensor.upload: the source has " + std::to_string(bytes) + " bytes but " + Describe() +
                  " has " + std::to_string(byteLength()));
  }
  if (bytes == 0) return;
  DeviceGuard guard(device());
  CheckCuda(cudaMemcpyAsync(data(), host, bytes, cudaMemcpyHostToDevice, stream.native()),
            "DeviceTensor.upload: cudaMemcpyAsync");
  stream.Synchronize();
}

void DeviceTensor::Download(void* host, std::size_t bytes, const CudaStream& stream) const {
  RequireDefined("DeviceTensor.download");
  RequireStream(stream, "DeviceTensor.download");
  if (bytes != byteLength()) {
    throw Invalid("DeviceTensor.download: the destination has " + std::to_string(bytes) + " bytes but " +
                  Describe() + " has " + std::to_string(byteLength()));
  }
  if (bytes == 0) return;
  DeviceGuard guard(device());
  CheckCuda(cudaMemcpyAsync(host, data(), bytes, cudaMemcpyDeviceToHost, stream.native()),
            "DeviceTensor.download: cudaMemcpyAsync");
  stream.Synchronize();
}

void DeviceTensor::EnqueueDownload(void* host, std::size_t bytes, const CudaStream& stream) const {
  RequireDefined("DeviceTensor.download");
  RequireStream(stream, "DeviceTensor.download");
  if (bytes != byteLength()) {
    throw Invalid("DeviceTensor.download: the destination has " + std::to_string(bytes) + " bytes but " +
                  Describe() + " has " + std::to_string(byteLength()));
  }
  if (bytes == 0) return;
  DeviceGuard guard(device());
  CheckCuda(cudaMemcpyAsync(host, data(), bytes, cudaMemcpyDeviceToHost, stream.native()),
            "DeviceTensor.download: cudaMemcpyAsync");
}

void DeviceTensor::CopyFrom(const DeviceTensor& src, const CudaStream& stream) const {
  RequireDefined("DeviceTensor.copyFrom");
  src.RequireDefined("DeviceTensor.copyFrom");
  RequireStream(stream, "DeviceTensor.copyFrom");
  if (src.dtype_ != dtype_) {
    throw Invalid("DeviceTensor.copyFrom: dtypes differ: destination " + Describe() + ", source " + src.Describe());
  }
  if (src.length_ != length_) {
    throw Invalid("DeviceTensor.copyFrom: lengths differ: destination " + Describe() + ", source " +
                  src.Describe());
  }
  if (SameRange(src) || byteLength() == 0) return;
  if (Overlaps(src)) {
    throw Invalid("DeviceTensor.copyFrom: source " + src.Describe() + " partly overlaps destination " + Describe());
  }
  DeviceGuard guard(device());
  if (src.device() == device()) {
    CheckCuda(cudaMemcpyAsync(data(), src.data(), byteLength(), cudaMemcpyDeviceToDevice, stream.native()),
              "DeviceTensor.copyFrom: cudaMemcpyAsync");
  } else {
    CheckCuda(cudaMemcpyPeerAsync(data(), device(), src.data(), src.device(), byteLength(), stream.native()),
              "DeviceTensor.copyFrom: cudaMemcpyPeerAsync");
  }
}

void DeviceTensor::Fill(double value, const CudaStream& stream) const {
  RequireDefined("DeviceTensor.fill");
  if (IsIntegerType(dtype_)) {
    int64_t lo, hi;
    IntegerRange(dtype_, &lo, &hi);
    // Exact comparisons: every bound used here is representable as a double except
    // INT64_MAX, whose double (2^63) is itself out of range, hence the '>='.
    if (!std::isfinite(value) || value != std::trunc(value) || value < static_cast<double>(lo) ||
        (dtype_ == DType::kI64 ? value >= 9223372036854775808.0 : value > static_cast<double>(hi))) {
      throw Invalid("DeviceTensor.fill: " + std::to_string(value) + " is not an integer in the range of " +
                    DTypeName(dtype_) + " [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    FillInteger(static_cast<int64_t>(value), stream);
    return;
  }
  uint64_t pattern = 0;
  switch (dtype_) {
    case DType::kF32: pattern = Bits(static_cast<float>(value)); break;
    case DType::kF64: pattern = Bits(value); break;
    // double -> float -> half: the first rounding can only matter for values within
    // 2^-29 relative of a half-way point; documented in docs/cuda.md.
    case DType::kF16: pattern = FloatToF16(static_cast<float>(value)); break;
    case DType::kBF16: pattern = FloatToBF16(static_cast<float>(value)); break;
    default: break;
  }
  FillPattern(pattern, stream);
}

void DeviceTensor::FillInteger(int64_t value, const CudaStream& stream) const {
  RequireDefined("DeviceTensor.fill");
  if (!IsIntegerType(dtype_)) {
    Fill(static_cast<double>(value), stream);
    return;
  }
  int64_t lo, hi;
  IntegerRange(dtype_, &lo, &hi);
  if (value < lo || value > hi) {
    throw Invalid("DeviceTensor.fill: " + std::to_string(value) + " is out of the range of " + DTypeName(dtype_) +
                  " [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  FillPattern(static_cast<uint64_t>(value), stream);
}

void DeviceTensor::FillPattern(uint64_t pattern, const CudaStream& stream) const {
  RequireStream(stream, "DeviceTensor.fill");
  if (length_ == 0) return;
  DeviceGuard guard(device());
  LaunchFillPattern(data(), length_, ElementSize(dtype_), pattern, stream.native());
}

}  // namespace mics::cuda
