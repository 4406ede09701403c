#ifdef MICS_WITH_CUDA

#include "napi/device_tensor_wrap.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "comm/progress_thread.h"
#include "core/error.h"
#include "cuda/cuda_event.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/pinned_scalars.h"
#include "napi/device_work.h"
#include "napi/errors.h"
#include "napi/host_buffer.h"
#include "napi/kernel_options.h"

namespace mics::napi {

namespace {

// The DeviceTensor constructor of each env (main thread, workers), for InstanceOf and
// NewInstance. Not the env's instance data: that single slot belongs to no one module.
std::mutex registryMutex;
std::unordered_map<napi_env, Napi::FunctionReference*>& Registry() {
  static auto* registry = new std::unordered_map<napi_env, Napi::FunctionReference*>();
  return *registry;
}

void ForgetEnv(void* arg) noexcept {  // env cleanup hook: nothing may unwind into Node
  try {
    napi_env env = static_cast<napi_env>(arg);
    std::lock_guard<std::mutex> lock(registryMutex);
    auto it = Registry().find(env);
    if (it != Registry().end()) {
      delete it->second;
      Registry().erase(it);
    }
  } catch (...) {
  }
}

Napi::Function Constructor(Napi::Env env) {
  std::lock_guard<std::mutex> lock(registryMutex);
  auto it = Registry().find(env);
  if (it == Registry().end()) throw Error(ErrorCode::kInternal, "DeviceTensor is not registered in this env");
  return it->second->Value();
}

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

// A non-negative integer count or index that a double holds exactly.
std::size_t Count(const Napi::Value& value, const std::string& what) {
  if (!value.IsNumber()) throw Invalid(what + " must be a non-negative integer");
  double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) {
    throw Invalid(what + " = " + value.ToString().Utf8Value() + " is not a non-negative integer");
  }
  return static_cast<std::size_t>(d);
}

DType DTypeArg(const Napi::Value& value, const std::string& what) {
  if (!value.IsString()) throw Invalid(what + " must be a dtype name (f32, f64, f16, bf16, i8, u8, i32, i64)");
  return ParseDType(value.As<Napi::String>().Utf8Value());
}

struct HostSpan {
  void* data;
  std::size_t bytes;
};

// A TypedArray whose type carries `dtype` (Uint8ClampedArray also counts as u8),
// over a plain fixed-length ArrayBuffer (host_buffer.h says why).
HostSpan HostArrayFor(const Napi::Value& value, DType dtype, const std::string& what) {
  const napi_typedarray_type want = ArrayTypeFor(dtype);
  if (!value.IsTypedArray()) {
    throw Invalid(what + " must be a " + ArrayTypeName(want) + " (the host type of " + DTypeName(dtype) + ")");
  }
  HostBytes bytes = HostBytesOf(value.Env(), value, what);
  if (bytes.type != want && !(want == napi_uint8_array && bytes.type == napi_uint8_clamped_array)) {
    throw Invalid(what + " is a " + ArrayTypeName(bytes.type) + " but a " + DTypeName(dtype) + " tensor needs a " +
                  ArrayTypeName(want));
  }
  return {bytes.data, bytes.bytes};
}

Napi::Value NewHostArray(Napi::Env env, DType dtype, std::size_t length) {
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, length * ElementSize(dtype));
  napi_value result;
  napi_status status = napi_create_typedarray(env, ArrayTypeFor(dtype), length, buffer, 0, &result);
  NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  return Napi::Value(env, result);
}

// Optional property of an options object.
Napi::Value Prop(const Napi::Object& o, const char* key) { return o.Has(key) ? o.Get(key) : Napi::Value(); }

const cuda::DeviceTensor& TensorProp(Napi::Env env, const Napi::Object& o, const char* key, const std::string& op) {
  Napi::Value v = Prop(o, key);
  if (v.IsEmpty() || v.IsUndefined()) throw Invalid(op + ": " + key + " is required (a DeviceTensor)");
  return DeviceTensorWrap::Get(env, v, key);
}

cuda::DeviceTensor OptTensorProp(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = Prop(o, key);
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return cuda::DeviceTensor();
  return DeviceTensorWrap::Get(env, v, key);
}


// A Promise for the work queued on `stream` so far: settled on the JS thread once
// the stream reaches this point (rejected with the work's CUDA error), holding the
// tensors until then. `settle` (JS thread, on success) gives the value.
Napi::Value Track(Napi::Env env, const cuda::CudaStream& stream, std::string what,
                  std::vector<cuda::DeviceTensor> tensors, std::function<napi_value(napi_env)> settle = nullptr,
                  napi_value keep = nullptr) {
  auto job = std::make_unique<DeviceWork::Job>();
  job->what = std::move(what);
  job->tensors = std::move(tensors);
  job->settle = std::move(settle);
  if (keep != nullptr) job->Keep(env, keep);
  DeviceWork::Job* started = nullptr;
  napi_value promise = DeviceWork::Start(env, std::move(job), &started);
  try {
    stream.OnComplete([started](int status) {
      started->cudaStatus = status;
      DeviceWork::Complete(started);
    });
  } catch (const Error& e) {
    started->error = e;  // the callback could not be queued: settle now (rejected)
    DeviceWork::Complete(started);
  }
  return Napi::Value(env, promise);
}

// Runs a kernel call: availability first (MICS_UNAVAILABLE naming why), argument
// errors thrown at the call; the work itself settles the returned Promise.
template <typename Fn>
Napi::Value KernelCall(const Napi::CallbackInfo& info, const char* op, Fn&& fn) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    cuda::RequireCuda(std::string("cudaKernels.") + op);
    return fn(env, std::string("cudaKernels.") + op);
  });
}

Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  return KernelCall(info, "accumulate", [&](Napi::Env env, std::string what) -> Napi::Value {
    const cuda::DeviceTensor& y = DeviceTensorWrap::Get(env, info[0], "y");
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[1], "x");
    double alpha = info.Length() > 2 && !info[2].IsUndefined() ? NumberArg(info[2], "accumulate: alpha") : 1.0;
    cuda::CudaStream& s = JsStream(y.device());
    cuda::Accumulate(y, x, static_cast<float>(alpha), s);
    return Track(env, s, what, {y, x});
  });
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  return KernelCall(info, "scale", [&](Napi::Env env, std::string what) -> Napi::Value {
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[0], "x");
    double alpha = NumberArg(info[1], "scale: alpha");
    cuda::CudaStream& s = JsStream(x.device());
    cuda::Scale(x, alpha, s);
    return Track(env, s, what, {x});
  });
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  return KernelCall(info, "cast", [&](Napi::Env env, std::string what) -> Napi::Value {
    const cuda::DeviceTensor& dst = DeviceTensorWrap::Get(env, info[0], "dst");
    const cuda::DeviceTensor& src = DeviceTensorWrap::Get(env, info[1], "src");
    cuda::CudaStream& s = JsStream(dst.device());
    cuda::Cast(dst, src, s);
    return Track(env, s, what, {dst, src});
  });
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  return KernelCall(info, "adamw", [&](Napi::Env env, std::string what) -> Napi::Value {
    const std::string op = "adamw";
    Napi::Object o = OptionsArg(info, op);
    const cuda::DeviceTensor& params = TensorProp(env, o, "params", op);
    const cuda::DeviceTensor& grads = TensorProp(env, o, "grads", op);
    const cuda::DeviceTensor& expAvg = TensorProp(env, o, "expAvg", op);
    const cuda::DeviceTensor& expAvgSq = TensorProp(env, o, "expAvgSq", op);
    cuda::DeviceTensor half = OptTensorProp(env, o, "halfParams");
    const cuda::AdamWOptions options = AdamWOptionsOf(o, op);
    cuda::CudaStream& s = JsStream(params.device());
    cuda::AdamW(params, grads, expAvg, expAvgSq, half, options, s);
    return Track(env, s, what, {params, grads, expAvg, expAvgSq, half});
  });
}

Napi::Value Sgd(const Napi::CallbackInfo& info) {
  return KernelCall(info, "sgd", [&](Napi::Env env, std::string what) -> Napi::Value {
    const std::string op = "sgd";
    Napi::Object o = OptionsArg(info, op);
    const cuda::DeviceTensor& params = TensorProp(env, o, "params", op);
    const cuda::DeviceTensor& grads = TensorProp(env, o, "grads", op);
    cuda::DeviceTensor buffer = OptTensorProp(env, o, "momentumBuffer");
    cuda::DeviceTensor half = OptTensorProp(env, o, "halfParams");
    const cuda::SgdOptions options = SgdOptionsOf(o, op);
    cuda::CudaStream& s = JsStream(params.device());
    cuda::Sgd(params, grads, buffer, half, options, s);
    return Track(env, s, what, {params, grads, buffer, half});
  });
}

// A scalar the kernel leaves in `out` (1 element), copied into pinned memory on the
// same stream and read on the JS thread once the stream got there.
template <typename T>
Napi::Value TrackScalar(Napi::Env env, const cuda::CudaStream& s, std::string what, const cuda::DeviceTensor& out,
                        std::vector<cuda::DeviceTensor> tensors, std::function<napi_value(napi_env, T)> toJs) {
  auto slot = std::make_shared<cuda::PinnedScalars::Slot>(cuda::PinnedScalars::Acquire());
  out.EnqueueDownload(slot->get(), sizeof(T), s);
  tensors.push_back(out);
  return Track(env, s, std::move(what), std::move(tensors), [slot, toJs](napi_env e) {
    T value;
    std::memcpy(&value, slot->get(), sizeof(T));
    return toJs(e, value);
  });
}

napi_value JsNumber(napi_env env, double value) {
  napi_value v = nullptr;
  napi_create_double(env, value, &v);
  return v;
}

Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return KernelCall(info, "sumOfSquares", [&](Napi::Env env, std::string what) -> Napi::Value {
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[0], "x");
    DType accType = info.Length() > 1 && !info[1].IsUndefined() ? DTypeArg(info[1], "sumOfSquares: dtype")
                                                                 : DType::kF64;
    if (accType != DType::kF64 && accType != DType::kF32) {
      throw Invalid(std::string("sumOfSquares: dtype ") + DTypeName(accType) + " is not valid: use f32 or f64");
    }
    cuda::DeviceTensor out = cuda::DeviceTensor::Allocate(accType, 1, x.device());
    cuda::CudaStream& s = JsStream(x.device());
    cuda::SumOfSquares(x, out, false, s);
    if (accType == DType::kF64) {
      return TrackScalar<double>(env, s, what, out, {x}, [](napi_env e, double v) { return JsNumber(e, v); });
    }
    return TrackScalar<float>(env, s, what, out, {x}, [](napi_env e, float v) { return JsNumber(e, v); });
  });
}

Napi::Value SumOfSquaresInto(const Napi::CallbackInfo& info) {
  return KernelCall(info, "sumOfSquaresInto", [&](Napi::Env env, std::string what) -> Napi::Value {
    const cuda::DeviceTensor& out = DeviceTensorWrap::Get(env, info[0], "out");
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[1], "x");
    bool accumulate = info.Length() > 2 && info[2].ToBoolean().Value();
    cuda::CudaStream& s = JsStream(out.device());
    cuda::SumOfSquares(x, out, accumulate, s);
    return Track(env, s, what, {out, x});
  });
}

Napi::Value HasNonFinite(const Napi::CallbackInfo& info) {
  return KernelCall(info, "hasNonFinite", [&](Napi::Env env, std::string what) -> Napi::Value {
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[0], "x");
    cuda::DeviceTensor flag = cuda::DeviceTensor::Allocate(DType::kI32, 1, x.device());
    cuda::CudaStream& s = JsStream(x.device());
    cuda::CheckNonFinite(x, flag, false, s);
    return TrackScalar<int32_t>(env, s, what, flag, {x}, [](napi_env e, int32_t found) {
      napi_value v = nullptr;
      napi_get_boolean(e, found != 0, &v);
      return v;
    });
  });
}

Napi::Value CheckNonFiniteInto(const Napi::CallbackInfo& info) {
  return KernelCall(info, "checkNonFiniteInto", [&](Napi::Env env, std::string what) -> Napi::Value {
    const cuda::DeviceTensor& flag = DeviceTensorWrap::Get(env, info[0], "flag");
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[1], "x");
    bool accumulate = info.Length() > 2 && info[2].ToBoolean().Value();
    cuda::CudaStream& s = JsStream(flag.device());
    cuda::CheckNonFinite(x, flag, accumulate, s);
    return Track(env, s, what, {flag, x});
  });
}

// Async host copies run here, one thread and one stream per device (never
// destroyed, like JsStream), so that the JS thread never waits for a copy.
struct CopyLane {
  std::unique_ptr<cuda::CudaStream> stream;
  std::unique_ptr<ProgressThread> thread;
};

CopyLane& CopyLaneOf(int device) {
  static std::mutex mutex;
  static auto* lanes = new std::vector<std::unique_ptr<CopyLane>>();  // never freed, see JsStream
  std::lock_guard<std::mutex> lock(mutex);
  if (device < 0) throw Error(ErrorCode::kInternal, "CopyLaneOf: no device");
  if (lanes->size() <= static_cast<std::size_t>(device)) lanes->resize(device + 1);
  auto& slot = (*lanes)[device];
  if (!slot) {
    auto lane = std::make_unique<CopyLane>();
    lane->stream = std::make_unique<cuda::CudaStream>(device, /*nonBlocking=*/true);
    lane->thread = std::make_unique<ProgressThread>("mics-copy-" + std::to_string(device));
    slot = std::move(lane);
  }
  return *slot;
}

// Runs copy(stream) on the device's copy lane after the work already queued on the
// JS stream (an event orders them), and returns a Promise settled when it is done.
// `keep` (the host array, this tensor) stays referenced until then.
Napi::Value HostCopy(Napi::Env env, const cuda::DeviceTensor& tensor, std::string what,
                     std::vector<napi_value> keep, std::function<napi_value(napi_env)> settle,
                     std::function<void(const cuda::CudaStream&)> copy) {
  const int device = tensor.device();
  CopyLane& lane = CopyLaneOf(device);
  auto after = std::make_shared<cuda::CudaEvent>(device);
  after->Record(JsStream(device));
  auto job = std::make_unique<DeviceWork::Job>();
  job->what = std::move(what);
  job->tensors = {tensor};
  job->settle = std::move(settle);
  job->touchesHost = true;
  for (napi_value v : keep) job->Keep(env, v);
  DeviceWork::Job* started = nullptr;
  napi_value promise = DeviceWork::Start(env, std::move(job), &started);
  cuda::CudaStream* stream = lane.stream.get();
  bool queued = lane.thread->Enqueue([started, stream, after, copy = std::move(copy)] {
    try {
      stream->Wait(*after);
      copy(*stream);
    } catch (const Error& e) {
      started->error = e;
    } catch (...) {
      started->error = Error(ErrorCode::kInternal, started->what + ": the copy failed");
    }
    DeviceWork::Complete(started);
  });
  if (!queued) {
    started->error = Error(ErrorCode::kInternal, started->what + ": the copy thread has stopped");
    DeviceWork::Complete(started);
  }
  return Napi::Value(env, promise);
}

napi_value ValueOfRef(napi_env env, napi_ref ref) {
  napi_value v = nullptr;
  napi_get_reference_value(env, ref, &v);
  return v;
}

}  // namespace

cuda::CudaStream& JsStream(int device) {
  static std::mutex mutex;
  static auto* streams = new std::vector<std::unique_ptr<cuda::CudaStream>>();  // never freed, see header
  std::lock_guard<std::mutex> lock(mutex);
  if (device < 0) throw Error(ErrorCode::kInternal, "JsStream: no device");
  if (streams->size() <= static_cast<std::size_t>(device)) streams->resize(device + 1);
  auto& slot = (*streams)[device];
  if (!slot) slot = std::make_unique<cuda::CudaStream>(device, /*nonBlocking=*/true);
  return *slot;
}

void DeviceTensorWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "DeviceTensor",
      {
          StaticMethod<&DeviceTensorWrap::Alloc>("alloc"),
          InstanceAccessor<&DeviceTensorWrap::GetDType>("dtype"),
          InstanceAccessor<&DeviceTensorWrap::Length>("length"),
          InstanceAccessor<&DeviceTensorWrap::ByteLength>("byteLength"),
          InstanceAccessor<&DeviceTensorWrap::Device>("device"),
          InstanceAccessor<&DeviceTensorWrap::Offset>("offset"),
          InstanceAccessor<&DeviceTensorWrap::Released>("released"),
          InstanceMethod<&DeviceTensorWrap::Upload>("upload"),
          InstanceMethod<&DeviceTensorWrap::Download>("download"),
          InstanceMethod<&DeviceTensorWrap::View>("view"),
          InstanceMethod<&DeviceTensorWrap::Fill>("fill"),
          InstanceMethod<&DeviceTensorWrap::CopyFrom>("copyFrom"),
          InstanceMethod<&DeviceTensorWrap::UploadAsync>("uploadAsync"),
          InstanceMethod<&DeviceTensorWrap::DownloadAsync>("downloadAsync"),
          InstanceMethod<&DeviceTensorWrap::FillAsync>("fillAsync"),
          InstanceMethod<&DeviceTensorWrap::CopyFromAsync>("copyFromAsync"),
          InstanceMethod<&DeviceTensorWrap::Release>("release"),
          InstanceMethod<&DeviceTensorWrap::ToString>("toString"),
      });
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    auto* ref = new Napi::FunctionReference(Napi::Persistent(ctor));
    auto [it, inserted] = Registry().emplace(static_cast<napi_env>(env), ref);
    if (!inserted) {
      delete it->second;
      it->second = ref;
    } else {
      napi_add_env_cleanup_hook(env, ForgetEnv, static_cast<napi_env>(env));
    }
  }
  exports.Set("DeviceTensor", ctor);
}

Napi::Object DeviceTensorWrap::NewInstance(Napi::Env env, const cuda::DeviceTensor& tensor) {
  cuda::DeviceTensor copy = tensor;
  return Constructor(env).New({Napi::External<cuda::DeviceTensor>::New(env, &copy)});
}

const cuda::DeviceTensor& DeviceTensorWrap::Get(Napi::Env env, const Napi::Value& value, const char* role) {
  if (value.IsEmpty() || !value.IsObject() || !value.As<Napi::Object>().InstanceOf(Constructor(env))) {
    throw Invalid(std::string(role) + " must be a DeviceTensor");
  }
  DeviceTensorWrap* wrap = Unwrap(value.As<Napi::Object>());
  if (wrap == nullptr) throw Invalid(std::string(role) + " must be a DeviceTensor");
  return wrap->tensor_;
}

DeviceTensorWrap::DeviceTensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceTensorWrap>(info) {
  Guard(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Invalid("DeviceTensor cannot be constructed directly: use DeviceTensor.alloc(dtype, length, device?)");
    }
    tensor_ = *info[0].As<Napi::External<cuda::DeviceTensor>>().Data();
    dtype_ = tensor_.dtype();
    length_ = tensor_.length();
    offset_ = tensor_.offset();
    device_ = tensor_.device();
  });
}

Napi::Value DeviceTensorWrap::Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    cuda::RequireCuda("DeviceTensor.alloc");
    DType dtype = DTypeArg(info[0], "DeviceTensor.alloc: dtype");
    std::size_t length = Count(info[1], "DeviceTensor.alloc: length");
    int device = -1;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      std::size_t d = Count(info[2], "DeviceTensor.alloc: device");
      if (d > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        throw Invalid("DeviceTensor.alloc: device " + std::to_string(d) + " is not valid");
      }
      device = static_cast<int>(d);
    }
    return NewInstance(env, cuda::DeviceTensor::Allocate(dtype, length, device));
  });
}

Napi::Value DeviceTensorWrap::GetDType(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), mics::DTypeName(dtype_)); });
}
Napi::Value DeviceTensorWrap::Length(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(length_)); });
}
Napi::Value DeviceTensorWrap::ByteLength(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(length_ * ElementSize(dtype_)));
  });
}
Napi::Value DeviceTensorWrap::Device(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), device_); });
}
Napi::Value DeviceTensorWrap::Offset(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(offset_)); });
}
Napi::Value DeviceTensorWrap::Released(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), !tensor_.defined()); });
}

void DeviceTensorWrap::RequireDefined(const char* what) const {
  if (!tensor_.defined()) throw Invalid(std::string("DeviceTensor.") + what + ": the tensor was released");
}

Napi::Value DeviceTensorWrap::Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("upload");
    HostSpan src = HostArrayFor(info[0], tensor_.dtype(), "DeviceTensor.upload: source");
    tensor_.Upload(src.data, src.bytes, JsStream(tensor_.device()));
    return info.This();
  });
}

Napi::Value DeviceTensorWrap::Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("download");
    Napi::Value target = info.Length() > 0 && !info[0].IsUndefined() ? info[0]
                                                                     : NewHostArray(env, tensor_.dtype(), tensor_.length());
    HostSpan dst = HostArrayFor(target, tensor_.dtype(), "DeviceTensor.download: destination");
    tensor_.Download(dst.data, dst.bytes, JsStream(tensor_.device()));
    return target;
  });
}

// The copy runs on the device's copy lane: the JS thread only checks the arguments.
Napi::Value DeviceTensorWrap::UploadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("uploadAsync");
    HostSpan src = HostArrayFor(info[0], tensor_.dtype(), "DeviceTensor.uploadAsync: source");
    if (src.bytes != tensor_.byteLength()) {
      throw Invalid("DeviceTensor.uploadAsync: the source has " + std::to_string(src.bytes) + " bytes but " +
                    tensor_.Describe() + " has " + std::to_string(tensor_.byteLength()));
    }
    napi_value self = info.This();
    cuda::DeviceTensor tensor = tensor_;
    return HostCopy(env, tensor_, "DeviceTensor.uploadAsync", {info[0], self},
                    [](napi_env) -> napi_value { return nullptr; },
                    [tensor, src](const cuda::CudaStream& s) { tensor.Upload(src.data, src.bytes, s); });
  });
}

Napi::Value DeviceTensorWrap::DownloadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("downloadAsync");
    Napi::Value target = info.Length() > 0 && !info[0].IsUndefined() ? info[0]
                                                                     : NewHostArray(env, tensor_.dtype(), tensor_.length());
    HostSpan dst = HostArrayFor(target, tensor_.dtype(), "DeviceTensor.downloadAsync: destination");
    if (dst.bytes != tensor_.byteLength()) {
      throw Invalid("DeviceTensor.downloadAsync: the destination has " + std::to_string(dst.bytes) + " bytes but " +
                    tensor_.Describe() + " has " + std::to_string(tensor_.byteLength()));
    }
    // The target is the Promise's value: a second reference, read back when it settles.
    napi_ref result = nullptr;
    if (napi_create_reference(env, target, 1, &result) != napi_ok) {
      throw Error(ErrorCode::kInternal, "DeviceTensor.downloadAsync: could not hold the destination");
    }
    auto owned = std::shared_ptr<napi_ref__>(result, [env](napi_ref ref) { napi_delete_reference(env, ref); });
    cuda::DeviceTensor tensor = tensor_;
    return HostCopy(env, tensor_, "DeviceTensor.downloadAsync", {target, info.This()},
                    [owned](napi_env e) { return ValueOfRef(e, owned.get()); },
                    [tensor, dst](const cuda::CudaStream& s) { tensor.Download(dst.data, dst.bytes, s); });
  });
}

Napi::Value DeviceTensorWrap::View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("view");
    std::size_t offset = Count(info[0], "DeviceTensor.view: offset");
    std::size_t length = info.Length() > 1 && !info[1].IsUndefined() ? Count(info[1], "DeviceTensor.view: length")
                                                                     : (offset <= length_ ? length_ - offset : 0);
    return NewInstance(env, tensor_.View(offset, length));
  });
}

void DeviceTensorWrap::EnqueueFill(const Napi::CallbackInfo& info, const cuda::CudaStream& s, const char* what) {
  if (info.Length() > 0 && info[0].IsBigInt()) {
    bool lossless = false;
    int64_t v = info[0].As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) {
      throw Invalid(std::string("DeviceTensor.") + what + ": " + info[0].ToString().Utf8Value() + " does not fit in int64");
    }
    tensor_.FillInteger(v, s);
  } else {
    tensor_.Fill(NumberArg(info[0], std::string("DeviceTensor.") + what + ": value"), s);
  }
}

Napi::Value DeviceTensorWrap::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("fill");
    cuda::CudaStream& s = JsStream(tensor_.device());
    EnqueueFill(info, s, "fill");
    s.Synchronize();
    return info.This();
  });
}

Napi::Value DeviceTensorWrap::FillAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("fillAsync");
    cuda::CudaStream& s = JsStream(tensor_.device());
    EnqueueFill(info, s, "fillAsync");
    return Track(env, s, "DeviceTensor.fillAsync", {tensor_});
  });
}

Napi::Value DeviceTensorWrap::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("copyFrom");
    const cuda::DeviceTensor& src = Get(env, info[0], "DeviceTensor.copyFrom: source");
    cuda::CudaStream& s = JsStream(tensor_.device());
    tensor_.CopyFrom(src, s);
    s.Synchronize();
    return info.This();
  });
}

Napi::Value DeviceTensorWrap::CopyFromAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    RequireDefined("copyFromAsync");
    const cuda::DeviceTensor& src = Get(env, info[0], "DeviceTensor.copyFromAsync: source");
    cuda::CudaStream& s = JsStream(tensor_.device());
    tensor_.CopyFrom(src, s);
    return Track(env, s, "DeviceTensor.copyFromAsync", {tensor_, src});
  });
}

Napi::Value DeviceTensorWrap::Release(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    tensor_ = cuda::DeviceTensor();
    return info.Env().Undefined();
  });
}

Napi::Value DeviceTensorWrap::ToString(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    std::string s = std::string("DeviceTensor ") + mics::DTypeName(dtype_) + "[" + std::to_string(length_) +
                    "] on cuda:" + std::to_string(device_);
    if (offset_ != 0) s += " (offset " + std::to_string(offset_) + ")";
    if (!tensor_.defined()) s += " (released)";
    return Napi::String::New(info.Env(), s);
  });
}

// cudaTotalMemory(device?): bytes of the device's memory (the current device when absent).
static Napi::Value CudaTotalMemory(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    int device = -1;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      double value = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
      if (!(value >= 0 && value <= 2147483647.0) || value != std::floor(value)) {
        throw Error(ErrorCode::kInvalidArgument, "cudaTotalMemory: device " + info[0].ToString().Utf8Value() +
                                                     " is not valid: use an integer index >= 0");
      }
      device = static_cast<int>(value);
    }
    size_t total = cuda::TotalMemory(device, "cudaTotalMemory");
    return Napi::Number::New(info.Env(), static_cast<double>(total));
  });
}

void InitDeviceTensor(Napi::Env env, Napi::Object exports) {
  DeviceTensorWrap::Init(env, exports);
  Napi::Object kernels = Napi::Object::New(env);
  kernels.Set("accumulate", Napi::Function::New(env, Accumulate, "accumulate"));
  kernels.Set("scale", Napi::Function::New(env, Scale, "scale"));
  kernels.Set("cast", Napi::Function::New(env, Cast, "cast"));
  kernels.Set("adamw", Napi::Function::New(env, AdamW, "adamw"));
  kernels.Set("sgd", Napi::Function::New(env, Sgd, "sgd"));
  kernels.Set("sumOfSquares", Napi::Function::New(env, SumOfSquares, "sumOfSquares"));
  kernels.Set("sumOfSquaresInto", Napi::Function::New(env, SumOfSquaresInto, "sumOfSquaresInto"));
  kernels.Set("hasNonFinite", Napi::Function::New(env, HasNonFinite, "hasNonFinite"));
  kernels.Set("checkNonFiniteInto", Napi::Function::New(env, CheckNonFiniteInto, "checkNonFiniteInto"));
  exports.Set("cudaKernels", kernels);
  exports.Set("cudaTotalMemory", Napi::Function::New(env, CudaTotalMemory, "cudaTotalMemory"));
}

}  // namespace mics::napi

#endif  // MICS_WITH_CUDA
