#include "napi/host_kernels.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/checksum.h"
#include "kernels/optimizer.h"
#include "kernels/optimizer_scalars.h"
#include "kernels/vector_ops.h"
#include "napi/errors.h"
#include "napi/host_buffer.h"
#include "napi/kernel_options.h"

namespace mics::napi {

namespace {

using Result = std::variant<std::monostate, double, bool, uint64_t>;

// Runs one kernel on libuv's pool and settles a Promise with its result. It holds a
// reference to every array the kernel touches until then, so the garbage collector
// cannot free one mid-run. Node deletes it on the JS thread after OnOK / OnError.
class KernelWorker final : public Napi::AsyncWorker {
 public:
  KernelWorker(Napi::Env env, const char* name, Napi::Promise::Deferred deferred, std::function<Result()> work)
      : Napi::AsyncWorker(env, name), deferred_(std::move(deferred)), work_(std::move(work)) {}

  void Hold(const Napi::Value& value) { kept_.push_back(Napi::Persistent(value)); }

 protected:
  void Execute() override {
    try {
      result_ = work_();
    } catch (const Error& e) {
      error_ = e;
      SetError(e.what());
    } catch (const std::exception& e) {
      error_ = Error(ErrorCode::kInternal, e.what());
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (const double* number = std::get_if<double>(&result_)) {
      deferred_.Resolve(Napi::Number::New(env, *number));
    } else if (const bool* flag = std::get_if<bool>(&result_)) {
      deferred_.Resolve(Napi::Boolean::New(env, *flag));
    } else if (const uint64_t* hash = std::get_if<uint64_t>(&result_)) {
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(*hash));
      deferred_.Resolve(Napi::String::New(env, hex));
    } else {
      deferred_.Resolve(env.Undefined());
    }
  }

  void OnError(const Napi::Error& error) override {
    if (error_) deferred_.Reject(ToJsError(Env(), *error_).Value());
    else deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<Result()> work_;
  std::vector<Napi::Reference<Napi::Value>> kept_;
  Result result_;
  std::optional<Error> error_;
};

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

void CheckStatus(Napi::Env env, napi_status status) {
  if (status != napi_ok) throw Napi::Error::New(env);
}

// A host range a kernel reads or writes (plain data: it travels to the pool thread).
struct HostArg {
  char* data = nullptr;
  std::size_t length = 0;  // elements
  std::size_t bytes = 0;
  DType dtype = DType::kU8;
  bool defined = false;
};

// The arrays a kernel uses, referenced by its worker until the Promise settles.
using Keep = std::vector<Napi::Value>;

// Memory a kernel on another thread must not use: a SharedArrayBuffer (other
// threads may write it meanwhile), a detached ArrayBuffer (its memory is gone) and
// a resizable one (it could shrink under the kernel).
void CheckBacking(Napi::Env env, napi_value arraybuffer, const std::string& what) {
  bool isArrayBuffer = false;
  CheckStatus(env, napi_is_arraybuffer(env, arraybuffer, &isArrayBuffer));
  if (!isArrayBuffer) {
    throw Invalid(what + ": a TypedArray over a SharedArrayBuffer is not supported: use an ArrayBuffer-backed array");
  }
  bool detached = false;
  CheckStatus(env, napi_is_detached_arraybuffer(env, arraybuffer, &detached));
  if (detached) throw Invalid(what + ": the TypedArray's ArrayBuffer is detached (transferred or freed): its memory is gone");
  Napi::Value resizable = Napi::Object(env, arraybuffer).Get("resizable");
  if (resizable.IsBoolean() && resizable.As<Napi::Boolean>().Value()) {
    throw Invalid(what + ": a TypedArray over a resizable ArrayBuffer is not supported: it could shrink while the kernel runs");
  }
}

// {data: TypedArray, dtype: string} with dtype one of `allowed` and data its array type.
// The array is appended to `keep`.
HostArg TensorArg(Napi::Env env, const Napi::Value& value, const std::string& op, const char* role,
                  std::initializer_list<DType> allowed, Keep& keep) {
  const std::string what = op + ": " + role;
  if (value.IsEmpty() || value.IsUndefined() || value.IsNull()) throw Invalid(what + " is required");
  if (!value.IsObject()) throw Invalid(what + " must be {data: TypedArray, dtype}");
  Napi::Object object = value.As<Napi::Object>();
  Napi::Value dtypeValue = object.Get("dtype");
  if (!dtypeValue.IsString()) throw Invalid(what + ": dtype must be a dtype name");
  const DType dtype = ParseDType(dtypeValue.As<Napi::String>().Utf8Value());
  std::string names;
  bool ok = false;
  std::size_t index = 0;
  for (DType d : allowed) {
    ok = ok || d == dtype;
    if (index > 0) names += (index + 1 == allowed.size()) ? " or " : ", ";
    names += DTypeName(d);
    ++index;
  }
  if (!ok) throw Invalid(what + " has dtype " + DTypeName(dtype) + " but must be " + names);
  Napi::Value data = object.Get("data");
  const napi_typedarray_type want = ArrayTypeFor(dtype);
  if (!data.IsTypedArray()) throw Invalid(what + ": data must be a " + ArrayTypeName(want) + " (dtype " + DTypeName(dtype) + ")");
  napi_typedarray_type type;
  std::size_t length = 0, byteOffset = 0;
  void* pointer = nullptr;
  napi_value arraybuffer;
  CheckStatus(env, napi_get_typedarray_info(env, data, &type, &length, &pointer, &arraybuffer, &byteOffset));
  if (type != want) {
    throw Invalid(what + " is a " + ArrayTypeName(type) + " but a " + DTypeName(dtype) + " tensor needs a " +
                  ArrayTypeName(want));
  }
  CheckBacking(env, arraybuffer, what);
  keep.push_back(data);
  HostArg arg;
  arg.defined = true;
  arg.data = static_cast<char*>(pointer);
  arg.length = length;
  arg.bytes = length * ElementSize(dtype);
  arg.dtype = dtype;
  return arg;
}

// An optional tensor property: undefined / null / missing means none.
HostArg OptionalTensorArg(Napi::Env env, const Napi::Object& options, const char* key, const std::string& op,
                          std::initializer_list<DType> allowed, Keep& keep) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return HostArg();
  return TensorArg(env, value, op, key, allowed, keep);
}

bool Overlap(const HostArg& a, const HostArg& b) {
  return a.bytes > 0 && b.bytes > 0 && a.data < b.data + b.bytes && b.data < a.data + a.bytes;
}

void SameLength(const std::string& op, const HostArg& a, const char* roleA, const HostArg& b, const char* roleB) {
  if (a.length != b.length) {
    throw Invalid(op + ": lengths differ: " + roleA + " has " + std::to_string(a.length) + " elements, " + roleB +
                  " has " + std::to_string(b.length));
  }
}

void Disjoint(const std::string& op, const HostArg& a, const char* roleA, const HostArg& b, const char* roleB) {
  if (Overlap(a, b)) throw Invalid(op + ": " + roleA + " and " + roleB + " overlap in memory");
}

// Parses and checks the arguments on the JS thread, then queues the kernel. Any
// failure, here or in the kernel, rejects the returned Promise (never a throw), so
// callers handle one error path.
template <typename Prepare>
Napi::Value RunKernel(const Napi::CallbackInfo& info, const char* op, Prepare&& prepare) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  Napi::Promise promise = deferred.Promise();
  try {
    Keep keep;
    std::function<Result()> work = prepare(env, keep);
    auto* worker = new KernelWorker(env, op, deferred, std::move(work));
    for (const Napi::Value& value : keep) worker->Hold(value);
    worker->Queue();
  } catch (const Error& e) {
    deferred.Reject(ToJsError(env, e).Value());
  } catch (const Napi::Error& e) {  // a throwing getter on an argument, a failed N-API call
    deferred.Reject(Napi::Value(env, MakeJsError(env, e)));
  } catch (const std::exception& e) {  // out of memory: reject rather than let it end the process
    deferred.Reject(ToJsError(env, Error(ErrorCode::kInternal, std::string(op) + ": " + e.what())).Value());
  }
  return promise;
}

Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  return RunKernel(info, "accumulate", [&](Napi::Env env, Keep& keep) {
    const std::string op = "accumulate";
    HostArg y = TensorArg(env, info[0], op, "y", {DType::kF32}, keep);
    HostArg x = TensorArg(env, info[1], op, "x", {DType::kF32, DType::kBF16, DType::kF16}, keep);
    const double alpha = info.Length() > 2 && !info[2].IsUndefined() ? NumberArg(info[2], op + ": alpha") : 1.0;
    SameLength(op, y, "y", x, "x");
    if (Overlap(y, x) && !(y.data == x.data && y.bytes == x.bytes)) {
      throw Invalid(op + ": y and x partly overlap in memory");
    }
    return [y, x, alpha]() -> Result {
      kernels::Accumulate(reinterpret_cast<float*>(y.data), x.data, x.dtype, static_cast<float>(alpha), y.length);
      return {};
    };
  });
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  return RunKernel(info, "scale", [&](Napi::Env env, Keep& keep) {
    const std::string op = "scale";
    HostArg x = TensorArg(env, info[0], op, "x", {DType::kF32, DType::kF64, DType::kBF16, DType::kF16}, keep);
    const double alpha = NumberArg(info[1], op + ": alpha");
    return [x, alpha]() -> Result {
      kernels::Scale(x.data, x.dtype, alpha, x.length);
      return {};
    };
  });
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  return RunKernel(info, "cast", [&](Napi::Env env, Keep& keep) {
    const std::string op = "cast";
    HostArg dst = TensorArg(env, info[0], op, "dst", {DType::kF32, DType::kBF16, DType::kF16}, keep);
    HostArg src = TensorArg(env, info[1], op, "src", {DType::kF32, DType::kBF16, DType::kF16}, keep);
    SameLength(op, dst, "dst", src, "src");
    Disjoint(op, dst, "dst", src, "src");
    if ((dst.dtype == DType::kF32) == (src.dtype == DType::kF32)) {
      throw Invalid(op + ": casting " + DTypeName(src.dtype) + " to " + DTypeName(dst.dtype) +
                    " is not supported: use f32 -> bf16/f16 or bf16/f16 -> f32");
    }
    return [dst, src]() -> Result {
      kernels::Cast(dst.data, dst.dtype, src.data, src.dtype, dst.length);
      return {};
    };
  });
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  return RunKernel(info, "adamw", [&](Napi::Env env, Keep& keep) {
    const std::string op = "adamw";
    Napi::Object o = OptionsArg(info, op);
    HostArg params = TensorArg(env, o.Get("params"), op, "params", {DType::kF32}, keep);
    HostArg grads = TensorArg(env, o.Get("grads"), op, "grads", {DType::kF32, DType::kBF16, DType::kF16}, keep);
    HostArg expAvg = TensorArg(env, o.Get("expAvg"), op, "expAvg", {DType::kF32}, keep);
    HostArg expAvgSq = TensorArg(env, o.Get("expAvgSq"), op, "expAvgSq", {DType::kF32}, keep);
    HostArg half = OptionalTensorArg(env, o, "halfParams", op, {DType::kBF16, DType::kF16}, keep);
    SameLength(op, params, "params", grads, "grads");
    SameLength(op, params, "params", expAvg, "expAvg");
    SameLength(op, params, "params", expAvgSq, "expAvgSq");
    Disjoint(op, params, "params", grads, "grads");
    Disjoint(op, params, "params", expAvg, "expAvg");
    Disjoint(op, params, "params", expAvgSq, "expAvgSq");
    Disjoint(op, grads, "grads", expAvg, "expAvg");
    Disjoint(op, grads, "grads", expAvgSq, "expAvgSq");
    Disjoint(op, expAvg, "expAvg", expAvgSq, "expAvgSq");
    if (half.defined) {
      SameLength(op, params, "params", half, "halfParams");
      Disjoint(op, half, "halfParams", params, "params");
      Disjoint(op, half, "halfParams", grads, "grads");
      Disjoint(op, half, "halfParams", expAvg, "expAvg");
      Disjoint(op, half, "halfParams", expAvgSq, "expAvgSq");
    }
    const kernels::AdamWOptions options = AdamWOptionsOf(o, op);
    kernels::CheckAdamWOptions(options, op);
    const kernels::AdamWScalars scalars = kernels::MakeAdamWScalars(options);
    return [params, grads, expAvg, expAvgSq, half, scalars]() -> Result {
      kernels::AdamW(reinterpret_cast<float*>(params.data), grads.data, grads.dtype,
                     reinterpret_cast<float*>(expAvg.data), reinterpret_cast<float*>(expAvgSq.data),
                     half.defined ? half.data : nullptr, half.dtype, params.length, scalars);
      return {};
    };
  });
}

Napi::Value Sgd(const Napi::CallbackInfo& info) {
  return RunKernel(info, "sgd", [&](Napi::Env env, Keep& keep) {
    const std::string op = "sgd";
    Napi::Object o = OptionsArg(info, op);
    HostArg params = TensorArg(env, o.Get("params"), op, "params", {DType::kF32}, keep);
    HostArg grads = TensorArg(env, o.Get("grads"), op, "grads", {DType::kF32, DType::kBF16, DType::kF16}, keep);
    HostArg buffer = OptionalTensorArg(env, o, "momentumBuffer", op, {DType::kF32}, keep);
    HostArg half = OptionalTensorArg(env, o, "halfParams", op, {DType::kBF16, DType::kF16}, keep);
    SameLength(op, params, "params", grads, "grads");
    Disjoint(op, params, "params", grads, "grads");
    const kernels::SgdOptions options = SgdOptionsOf(o, op);
    kernels::CheckSgdOptions(options, op);
    const bool hasMomentum = options.momentum != 0.0;
    if (hasMomentum) {
      if (!buffer.defined) throw Invalid(op + ": momentumBuffer is required when momentum != 0");
      SameLength(op, params, "params", buffer, "momentumBuffer");
      Disjoint(op, buffer, "momentumBuffer", params, "params");
      Disjoint(op, buffer, "momentumBuffer", grads, "grads");
    }
    if (half.defined) {
      SameLength(op, params, "params", half, "halfParams");
      Disjoint(op, half, "halfParams", params, "params");
      Disjoint(op, half, "halfParams", grads, "grads");
      if (hasMomentum) Disjoint(op, half, "halfParams", buffer, "momentumBuffer");
    }
    const kernels::SgdScalars scalars = kernels::MakeSgdScalars(options);
    float* momentum = hasMomentum ? reinterpret_cast<float*>(buffer.data) : nullptr;
    return [params, grads, momentum, half, scalars]() -> Result {
      kernels::Sgd(reinterpret_cast<float*>(params.data), grads.data, grads.dtype, momentum,
                   half.defined ? half.data : nullptr, half.dtype, params.length, scalars);
      return {};
    };
  });
}

Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return RunKernel(info, "sumOfSquares", [&](Napi::Env env, Keep& keep) {
    HostArg x = TensorArg(env, info[0], "sumOfSquares", "x", {DType::kF32, DType::kBF16, DType::kF16}, keep);
    return [x]() -> Result { return kernels::SumOfSquares(x.data, x.dtype, x.length); };
  });
}

Napi::Value HasNonFinite(const Napi::CallbackInfo& info) {
  return RunKernel(info, "hasNonFinite", [&](Napi::Env env, Keep& keep) {
    HostArg x = TensorArg(env, info[0], "hasNonFinite", "x", {DType::kF32, DType::kF64, DType::kBF16, DType::kF16}, keep);
    return [x]() -> Result { return kernels::HasNonFinite(x.data, x.dtype, x.length); };
  });
}

// checksum(bytes: TypedArray | DataView): the XXH64 of its bytes as 16 hex digits.
Napi::Value Checksum(const Napi::CallbackInfo& info) {
  return RunKernel(info, "checksum", [&](Napi::Env env, Keep& keep) {
    const std::string what = "checksum: x";
    Napi::Value value = info.Length() > 0 ? info[0] : env.Undefined();
    void* pointer = nullptr;
    std::size_t bytes = 0;
    napi_value arraybuffer;
    if (value.IsTypedArray()) {
      napi_typedarray_type type;
      std::size_t length = 0, byteOffset = 0;
      CheckStatus(env, napi_get_typedarray_info(env, value, &type, &length, &pointer, &arraybuffer, &byteOffset));
      bytes = value.As<Napi::TypedArray>().ByteLength();
    } else if (value.IsDataView()) {
      std::size_t byteOffset = 0;
      CheckStatus(env, napi_get_dataview_info(env, value, &bytes, &pointer, &arraybuffer, &byteOffset));
    } else {
      throw Invalid(what + " must be a TypedArray or DataView");
    }
    CheckBacking(env, arraybuffer, what);
    keep.push_back(value);
    const char* data = static_cast<const char*>(pointer);
    return [data, bytes]() -> Result { return kernels::Checksum(data, bytes); };
  });
}

}  // namespace

void InitHostKernels(Napi::Env env, Napi::Object exports) {
  Napi::Object kernels = Napi::Object::New(env);
  kernels.Set("accumulate", Napi::Function::New(env, Accumulate, "accumulate"));
  kernels.Set("scale", Napi::Function::New(env, Scale, "scale"));
  kernels.Set("cast", Napi::Function::New(env, Cast, "cast"));
  kernels.Set("adamw", Napi::Function::New(env, AdamW, "adamw"));
  kernels.Set("sgd", Napi::Function::New(env, Sgd, "sgd"));
  kernels.Set("sumOfSquares", Napi::Function::New(env, SumOfSquares, "sumOfSquares"));
  kernels.Set("hasNonFinite", Napi::Function::New(env, HasNonFinite, "hasNonFinite"));
  kernels.Set("checksum", Napi::Function::New(env, Checksum, "checksum"));
  exports.Set("hostKernels", kernels);
}

}  // namespace mics::napi
