// JS class DeviceTensor (device memory with a dtype, zero-copy views, upload /
// download / fill / copy) and the `cudaKernels` functions, in the CUDA build only.
// In the node-gyp build InitDeviceTensor registers nothing (lib/cuda reports why).
//
// Kernels never wait on the JS thread: each validates its arguments (errors are
// thrown at the call), enqueues its work on the device's JS stream (JsStream) and
// returns a Promise that settles once the stream has run it (DeviceWork: a stream
// callback, no polling), rejected with the work's CUDA error. So do
// fillAsync/copyFromAsync (same stream) and uploadAsync/downloadAsync, whose copies
// run on a per-device copy thread and stream, ordered after the work already queued
// on the JS stream.
//
// upload, download, fill and copyFrom stay synchronous: they return when the bytes
// are there. upload/download copy from/to pageable JavaScript memory, which CUDA
// copies synchronously on the calling thread anyway (through a staging buffer), and
// the code that uses fill/copyFrom synchronously (lib/comm/tensor.ts, before NCCL
// collectives that run on their own streams) relies on the data being in place on
// return. The *Async forms are for everything else.
//
// Without a usable device every call throws MICS_UNAVAILABLE naming why (no driver,
// no device).
#pragma once

#include <napi.h>

#ifdef MICS_WITH_CUDA
#include "cuda/cuda_stream.h"
#include "cuda/device_tensor.h"
#endif

namespace mics::napi {

#ifdef MICS_WITH_CUDA

class DeviceTensorWrap : public Napi::ObjectWrap<DeviceTensorWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // A new JS DeviceTensor holding `tensor` (sharing its memory).
  static Napi::Object NewInstance(Napi::Env env, const cuda::DeviceTensor& tensor);
  // The tensor behind a JS DeviceTensor; throws mics::Error(kInvalidArgument) naming
  // `role` when value is not one. Other napi modules (communicators) use this.
  static const cuda::DeviceTensor& Get(Napi::Env env, const Napi::Value& value, const char* role);

  explicit DeviceTensorWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Alloc(const Napi::CallbackInfo& info);
  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value ByteLength(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Offset(const Napi::CallbackInfo& info);
  Napi::Value Released(const Napi::CallbackInfo& info);
  Napi::Value Upload(const Napi::CallbackInfo& info);
  Napi::Value Download(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value UploadAsync(const Napi::CallbackInfo& info);
  Napi::Value DownloadAsync(const Napi::CallbackInfo& info);
  Napi::Value FillAsync(const Napi::CallbackInfo& info);
  Napi::Value CopyFromAsync(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value ToString(const Napi::CallbackInfo& info);

  void RequireDefined(const char* what) const;  // kInvalidArgument once released
  // Enqueues fill(info[0]) (a number, or a bigint for integer dtypes) on s.
  void EnqueueFill(const Napi::CallbackInfo& info, const cuda::CudaStream& s, const char* what);

  cuda::DeviceTensor tensor_;  // undefined after release()
  // Kept for the accessors after release().
  DType dtype_ = DType::kF32;
  std::size_t length_ = 0;
  std::size_t offset_ = 0;
  int device_ = -1;
};

// The stream JS-facing calls use on `device`: created on first use, never destroyed
// (it must outlive every env and the runtime's own shutdown order is not ours).
cuda::CudaStream& JsStream(int device);

// Registers DeviceTensor and cudaKernels on exports.
void InitDeviceTensor(Napi::Env env, Napi::Object exports);

#else

inline void InitDeviceTensor(Napi::Env, Napi::Object) {}

#endif

}  // namespace mics::napi
