#ifdef MICS_WITH_CUDA

#include "napi/device_tensor_wrap.h"

#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "napi/errors.h"

namespace mics::napi {

namespace {

// The DeviceTensor constructor of each env (main thread, workers), for InstanceOf and
// NewInstance. Not the env's instance data: that single slot belongs to no one module.
std::mutex registryMutex;
std::unordered_map<napi_env, Napi::FunctionReference*>& Registry() {
  static auto* registry = new std::unordered_map<napi_env, Napi::FunctionReference*>();
  return *registry;
}

void ForgetEnv(void* arg) {
  napi_env env = static_cast<napi_env>(arg);
  std::lock_guard<std::mutex> lock(registryMutex);
  auto it = Registry().find(env);
  if (it != Registry().end()) {
    delete it->second;
    Registry().erase(it);
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

double NumberArg(const Napi::Value& value, const std::string& what) {
  if (!value.IsNumber()) throw Invalid(what + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

DType DTypeArg(const Napi::Value& value, const std::string& what) {
  if (!value.IsString()) throw Invalid(what + " must be a dtype name (f32, f64, f16, bf16, i8, u8, i32, i64)");
  return ParseDType(value.As<Napi::String>().Utf8Value());
}

// The TypedArray that carries each dtype on the host (bf16/f16: Uint16Array).
napi_typedarray_type ArrayTypeFor(DType dtype) {
  switch (dtype) {
    case DType::kF32: return napi_float32_array;
    case DType::kF64: return napi_float64_array;
    case DType::kF16:
    case DType::kBF16: return napi_uint16_array;
    case DType::kI8: return napi_int8_array;
    case DType::kU8: return napi_uint8_array;
    case DType::kI32: return napi_int32_array;
    case DType::kI64: return napi_bigint64_array;
  }
  return napi_uint8_array;
}

const char* ArrayTypeName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

struct HostSpan {
  void* data;
  std::size_t bytes;
};

// A TypedArray whose type carries `dtype` (Uint8ClampedArray also counts as u8).
HostSpan HostArrayFor(const Napi::Value& value, DType dtype, const std::string& what) {
  const napi_typedarray_type want = ArrayTypeFor(dtype);
  if (!value.IsTypedArray()) {
    throw Invalid(what + " must be a " + ArrayTypeName(want) + " (the host type of " + DTypeName(dtype) + ")");
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  napi_typedarray_type got = array.TypedArrayType();
  if (got != want && !(want == napi_uint8_array && got == napi_uint8_clamped_array)) {
    throw Invalid(what + " is a " + ArrayTypeName(got) + " but a " + DTypeName(dtype) + " tensor needs a " +
                  ArrayTypeName(want));
  }
  return {static_cast<char*>(array.ArrayBuffer().Data()) + array.ByteOffset(), array.ByteLength()};
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

double OptNumber(const Napi::Object& o, const char* key, double fallback, const std::string& op) {
  Napi::Value v = Prop(o, key);
  if (v.IsEmpty() || v.IsUndefined()) return fallback;
  return NumberArg(v, op + ": " + key);
}

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

int64_t StepProp(const Napi::Object& o, const std::string& op) {
  Napi::Value v = Prop(o, "step");
  if (v.IsEmpty() || v.IsUndefined()) throw Invalid(op + ": step is required (1 for the first step)");
  double d = NumberArg(v, op + ": step");
  if (d != std::floor(d) || d < 1 || d > 9007199254740991.0) {
    throw Invalid(op + ": step = " + v.ToString().Utf8Value() + " is not valid: steps are integers from 1");
  }
  return static_cast<int64_t>(d);
}

Napi::Object OptionsArg(const Napi::CallbackInfo& info, const std::string& op) {
  if (info.Length() < 1 || !info[0].IsObject()) throw Invalid(op + ": an options object is required");
  return info[0].As<Napi::Object>();
}

// Runs a kernel call: availability first (MICS_UNAVAILABLE naming why), mics::Error
// -> JS error, then waits for the work so its errors surface here.
template <typename Fn>
Napi::Value KernelCall(const Napi::CallbackInfo& info, const char* op, Fn&& fn) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    cuda::RequireCuda(std::string("cudaKernels.") + op);
    return fn(env);
  });
}

Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  return KernelCall(info, "accumulate", [&](Napi::Env env) -> Napi::Value {
    const cuda::DeviceTensor& y = DeviceTensorWrap::Get(env, info[0], "y");
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[1], "x");
    double alpha = info.Length() > 2 && !info[2].IsUndefined() ? NumberArg(info[2], "accumulate: alpha") : 1.0;
    cuda::CudaStream& s = JsStream(y.device());
    cuda::Accumulate(y, x, static_cast<float>(alpha), s);
    s.Synchronize();
    return env.Undefined();
  });
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  return KernelCall(info, "scale", [&](Napi::Env env) -> Napi::Value {
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[0], "x");
    double alpha = NumberArg(info[1], "scale: alpha");
    cuda::CudaStream& s = JsStream(x.device());
    cuda::Scale(x, alpha, s);
    s.Synchronize();
    return env.Undefined();
  });
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  return KernelCall(info, "cast", [&](Napi::Env env) -> Napi::Value {
    const cuda::DeviceTensor& dst = DeviceTensorWrap::Get(env, info[0], "dst");
    const cuda::DeviceTensor& src = DeviceTensorWrap::Get(env, info[1], "src");
    cuda::CudaStream& s = JsStream(dst.device());
    cuda::Cast(dst, src, s);
    s.Synchronize();
    return env.Undefined();
  });
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  return KernelCall(info, "adamw", [&](Napi::Env env) -> Napi::Value {
    const std::string op = "adamw";
    Napi::Object o = OptionsArg(info, op);
    const cuda::DeviceTensor& params = TensorProp(env, o, "params", op);
    const cuda::DeviceTensor& grads = TensorProp(env, o, "grads", op);
    const cuda::DeviceTensor& expAvg = TensorProp(env, o, "expAvg", op);
    const cuda::DeviceTensor& expAvgSq = TensorProp(env, o, "expAvgSq", op);
    cuda::DeviceTensor half = OptTensorProp(env, o, "halfParams");
    cuda::AdamWOptions options;
    options.lr = OptNumber(o, "lr", options.lr, op);
    options.beta1 = OptNumber(o, "beta1", options.beta1, op);
    options.beta2 = OptNumber(o, "beta2", options.beta2, op);
    options.eps = OptNumber(o, "eps", options.eps, op);
    options.weightDecay = OptNumber(o, "weightDecay", options.weightDecay, op);
    options.gradScale = OptNumber(o, "gradScale", options.gradScale, op);
    options.step = StepProp(o, op);
    cuda::CudaStream& s = JsStream(params.device());
    cuda::AdamW(params, grads, expAvg, expAvgSq, half, options, s);
    s.Synchronize();
    return env.Undefined();
  });
}

Napi::Value Sgd(const Napi::CallbackInfo& info) {
  return KernelCall(info, "sgd", [&](Napi::Env env) -> Napi::Value {
    const std::string op = "sgd";
    Napi::Object o = OptionsArg(info, op);
    const cuda::DeviceTensor& params = TensorProp(env, o, "params", op);
    const cuda::DeviceTensor& grads = TensorProp(env, o, "grads", op);
    cuda::DeviceTensor buffer = OptTensorProp(env, o, "momentumBuffer");
    cuda::DeviceTensor half = OptTensorProp(env, o, "halfParams");
    cuda::SgdOptions options;
    options.lr = OptNumber(o, "lr", options.lr, op);
    options.momentum = OptNumber(o, "momentum", options.momentum, op);
    options.dampening = OptNumber(o, "dampening", options.dampening, op);
    options.weightDecay = OptNumber(o, "weightDecay", options.weightDecay, op);
    options.gradScale = OptNumber(o, "gradScale", options.gradScale, op);
    Napi::Value nesterov = Prop(o, "nesterov");
    options.nesterov = !nesterov.IsEmpty() && nesterov.ToBoolean().Value();
    options.step = StepProp(o, op);
    cuda::CudaStream& s = JsStream(params.device());
    cuda::Sgd(params, grads, buffer, half, options, s);
    s.Synchronize();
    return env.Undefined();
  });
}

Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return KernelCall(info, "sumOfSquares", [&](Napi::Env env) -> Napi::Value {
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[0], "x");
    DType accType = info.Length() > 1 && !info[1].IsUndefined() ? DTypeArg(info[1], "sumOfSquares: dtype")
                                                                 : DType::kF64;
    if (accType != DType::kF64 && accType != DType::kF32) {
      throw Invalid(std::string("sumOfSquares: dtype ") + DTypeName(accType) + " is not valid: use f32 or f64");
    }
    cuda::DeviceTensor out = cuda::DeviceTensor::Allocate(accType, 1, x.device());
    cuda::CudaStream& s = JsStream(x.device());
    cuda::SumOfSquares(x, out, false, s);
    double result = 0;
    if (accType == DType::kF64) {
      out.Download(&result, sizeof(double), s);
    } else {
      float r = 0;
      out.Download(&r, sizeof(float), s);
      result = r;
    }
    return Napi::Number::New(env, result);
  });
}

Napi::Value SumOfSquaresInto(const Napi::CallbackInfo& info) {
  return KernelCall(info, "sumOfSquaresInto", [&](Napi::Env env) -> Napi::Value {
    const cuda::DeviceTensor& out = DeviceTensorWrap::Get(env, info[0], "out");
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[1], "x");
    bool accumulate = info.Length() > 2 && info[2].ToBoolean().Value();
    cuda::CudaStream& s = JsStream(out.device());
    cuda::SumOfSquares(x, out, accumulate, s);
    s.Synchronize();
    return env.Undefined();
  });
}

Napi::Value HasNonFinite(const Napi::CallbackInfo& info) {
  return KernelCall(info, "hasNonFinite", [&](Napi::Env env) -> Napi::Value {
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[0], "x");
    cuda::DeviceTensor flag = cuda::DeviceTensor::Allocate(DType::kI32, 1, x.device());
    cuda::CudaStream& s = JsStream(x.device());
    cuda::CheckNonFinite(x, flag, false, s);
    int32_t found = 0;
    flag.Download(&found, sizeof(found), s);
    return Napi::Boolean::New(env, found != 0);
  });
}

Napi::Value CheckNonFiniteInto(const Napi::CallbackInfo& info) {
  return KernelCall(info, "checkNonFiniteInto", [&](Napi::Env env) -> Napi::Value {
    const cuda::DeviceTensor& flag = DeviceTensorWrap::Get(env, info[0], "flag");
    const cuda::DeviceTensor& x = DeviceTensorWrap::Get(env, info[1], "x");
    bool accumulate = info.Length() > 2 && info[2].ToBoolean().Value();
    cuda::CudaStream& s = JsStream(flag.device());
    cuda::CheckNonFinite(x, flag, accumulate, s);
    s.Synchronize();
    return env.Undefined();
  });
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
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(),
                               "DeviceTensor cannot be constructed directly: use DeviceTensor.alloc(dtype, length, device?)");
  }
  tensor_ = *info[0].As<Napi::External<cuda::DeviceTensor>>().Data();
  dtype_ = tensor_.dtype();
  length_ = tensor_.length();
  offset_ = tensor_.offset();
  device_ = tensor_.device();
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
  return Napi::String::New(info.Env(), mics::DTypeName(dtype_));
}
Napi::Value DeviceTensorWrap::Length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(length_));
}
Napi::Value DeviceTensorWrap::ByteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(length_ * ElementSize(dtype_)));
}
Napi::Value DeviceTensorWrap::Device(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_); }
Napi::Value DeviceTensorWrap::Offset(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(offset_));
}
Napi::Value DeviceTensorWrap::Released(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.defined());
}

Napi::Value DeviceTensorWrap::Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (!tensor_.defined()) throw Invalid("DeviceTensor.upload: the tensor was released");
    HostSpan src = HostArrayFor(info[0], tensor_.dtype(), "DeviceTensor.upload: source");
    tensor_.Upload(src.data, src.bytes, JsStream(tensor_.device()));
    return info.This();
  });
}

Napi::Value DeviceTensorWrap::Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (!tensor_.defined()) throw Invalid("DeviceTensor.download: the tensor was released");
    Napi::Value target = info.Length() > 0 && !info[0].IsUndefined() ? info[0]
                                                                     : NewHostArray(env, tensor_.dtype(), tensor_.length());
    HostSpan dst = HostArrayFor(target, tensor_.dtype(), "DeviceTensor.download: destination");
    tensor_.Download(dst.data, dst.bytes, JsStream(tensor_.device()));
    return target;
  });
}

Napi::Value DeviceTensorWrap::View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (!tensor_.defined()) throw Invalid("DeviceTensor.view: the tensor was released");
    std::size_t offset = Count(info[0], "DeviceTensor.view: offset");
    std::size_t length = info.Length() > 1 && !info[1].IsUndefined() ? Count(info[1], "DeviceTensor.view: length")
                                                                     : (offset <= length_ ? length_ - offset : 0);
    return NewInstance(env, tensor_.View(offset, length));
  });
}

Napi::Value DeviceTensorWrap::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (!tensor_.defined()) throw Invalid("DeviceTensor.fill: the tensor was released");
    cuda::CudaStream& s = JsStream(tensor_.device());
    if (info.Length() > 0 && info[0].IsBigInt()) {
      bool lossless = false;
      int64_t v = info[0].As<Napi::BigInt>().Int64Value(&lossless);
      if (!lossless) throw Invalid("DeviceTensor.fill: " + info[0].ToString().Utf8Value() + " does not fit in int64");
      tensor_.FillInteger(v, s);
    } else {
      tensor_.Fill(NumberArg(info[0], "DeviceTensor.fill: value"), s);
    }
    s.Synchronize();
    return info.This();
  });
}

Napi::Value DeviceTensorWrap::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (!tensor_.defined()) throw Invalid("DeviceTensor.copyFrom: the tensor was released");
    const cuda::DeviceTensor& src = Get(env, info[0], "DeviceTensor.copyFrom: source");
    cuda::CudaStream& s = JsStream(tensor_.device());
    tensor_.CopyFrom(src, s);
    s.Synchronize();
    return info.This();
  });
}

Napi::Value DeviceTensorWrap::Release(const Napi::CallbackInfo& info) {
  tensor_ = cuda::DeviceTensor();
  return info.Env().Undefined();
}

Napi::Value DeviceTensorWrap::ToString(const Napi::CallbackInfo& info) {
  std::string s = std::string("DeviceTensor ") + mics::DTypeName(dtype_) + "[" + std::to_string(length_) +
                  "] on cuda:" + std::to_string(device_);
  if (offset_ != 0) s += " (offset " + std::to_string(offset_) + ")";
  if (!tensor_.defined()) s += " (released)";
  return Napi::String::New(info.Env(), s);
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
}

}  // namespace mics::napi

#endif  // MICS_WITH_CUDA
