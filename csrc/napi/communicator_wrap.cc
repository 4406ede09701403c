#include "napi/communicator_wrap.h"

#include <chrono>
#include <string>
#include <vector>

#include "cpu/cpu_communicator.h"
#include "napi/errors.h"

#ifdef MICS_WITH_CUDA
#include "napi/device_tensor_wrap.h"
#include "nccl/nccl_communicator.h"
#endif

namespace mics::napi {

namespace {

struct HostView {  // host or device memory: only the address range matters here
  char* data = nullptr;
  std::size_t bytes = 0;
};

// A buffer argument: a TypedArray for host backends, a DeviceTensor for NCCL.
HostView ViewOf(Napi::Env env, const Napi::Value& value, const char* role, bool device, DType dtype) {
  if (value.IsNull() || value.IsUndefined()) return {};
  if (device) {
#ifdef MICS_WITH_CUDA
    const cuda::DeviceTensor& tensor = DeviceTensorWrap::Get(env, value, role);
    if (tensor.dtype() != dtype) {
      throw Error(ErrorCode::kInvalidArgument, std::string(role) + " is a " + DTypeName(tensor.dtype()) +
                                                   " DeviceTensor but the op's dtype is " + DTypeName(dtype));
    }
    return HostView{static_cast<char*>(tensor.data()), tensor.byteLength()};
#else
    throw Error(ErrorCode::kUnavailable, "device buffers need the CUDA build");
#endif
  }
  if (!value.IsTypedArray()) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(role) + " buffer must be a TypedArray (this communicator's backend works on host memory)");
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  HostView view;
  view.data = static_cast<char*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  view.bytes = array.ByteLength();
  return view;
}

bool Overlap(const HostView& a, const HostView& b) {
  return a.bytes > 0 && b.bytes > 0 && a.data < b.data + b.bytes && b.data < a.data + a.bytes;
}

CollectiveType ParseCollective(const std::string& name) {
  for (CollectiveType t : {CollectiveType::kAllGather, CollectiveType::kReduceScatter, CollectiveType::kAllReduce,
                           CollectiveType::kBroadcast, CollectiveType::kBarrier}) {
    if (name == CollectiveName(t)) return t;
  }
  throw Error(ErrorCode::kInvalidArgument,
              "collective '" + name + "' is not valid: use allGather, reduceScatter, allReduce, broadcast or barrier");
}

std::string Bytes(std::size_t n) { return std::to_string(n) + " bytes"; }

// Checks sizes and aliasing like NCCL does and fills in the per-rank count.
mics::Collective Describe(CollectiveType type, const HostView& send, const HostView& recv, DType dtype,
                          ReduceOp op, int root, int rank, int size) {
  mics::Collective c;
  c.type = type;
  c.dtype = dtype;
  c.op = op;
  c.root = root;
  c.send = send.data;
  c.recv = recv.data;
  if (type == CollectiveType::kBarrier) return c;
  const std::size_t elem = ElementSize(dtype);
  const std::string name = CollectiveName(type);
  if (send.bytes % elem != 0 || recv.bytes % elem != 0) {
    throw Error(ErrorCode::kInvalidArgument, name + ": buffer sizes (" + Bytes(send.bytes) + ", " +
                                                 Bytes(recv.bytes) + ") are not whole " + DTypeName(dtype) +
                                                 " elements");
  }
  const std::size_t n = static_cast<std::size_t>(size);
  switch (type) {
    case CollectiveType::kAllGather:
      if (recv.bytes != send.bytes * n) {
        throw Error(ErrorCode::kInvalidArgument,
                    "allGather: output must hold size x input = " + std::to_string(n) + " x " + Bytes(send.bytes) +
                        ", got " + Bytes(recv.bytes));
      }
      if (Overlap(send, recv) && send.data != recv.data + rank * send.bytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    "allGather: input overlaps output but is not this rank's slot (in place means input = output[rank*count .. (rank+1)*count))");
      }
      c.count = send.bytes / elem;
      break;
    case CollectiveType::kReduceScatter:
      if (send.bytes != recv.bytes * n) {
        throw Error(ErrorCode::kInvalidArgument,
                    "reduceScatter: input must hold size x output = " + std::to_string(n) + " x " + Bytes(recv.bytes) +
                        ", got " + Bytes(send.bytes));
      }
      if (Overlap(send, recv) && recv.data != send.data + rank * recv.bytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    "reduceScatter: output overlaps input but is not this rank's slot (in place means output = input[rank*count .. (rank+1)*count))");
      }
      c.count = recv.bytes / elem;
      break;
    case CollectiveType::kAllReduce:
    case CollectiveType::kBroadcast:
      if (send.bytes != recv.bytes) {
        throw Error(ErrorCode::kInvalidArgument,
                    name + ": input and output must be the same size, got " + Bytes(send.bytes) + " and " + Bytes(recv.bytes));
      }
      if (Overlap(send, recv) && send.data != recv.data) {
        throw Error(ErrorCode::kInvalidArgument, name + ": input and output partially overlap (use the same buffer for in place)");
      }
      if (type == CollectiveType::kBroadcast && (root < 0 || root >= size)) {
        throw Error(ErrorCode::kInvalidArgument,
                    "broadcast: root " + std::to_string(root) + " is not valid: use 0 <= root < " + std::to_string(size));
      }
      c.count = recv.bytes / elem;
      break;
    case CollectiveType::kBarrier:
      break;
  }
  return c;
}

}  // namespace

void CommunicatorWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "Communicator",
      {
          InstanceAccessor<&CommunicatorWrap::Address>("address"),
          InstanceAccessor<&CommunicatorWrap::Rank>("rank"),
          InstanceAccessor<&CommunicatorWrap::Size>("size"),
          InstanceAccessor<&CommunicatorWrap::Name>("name"),
          InstanceAccessor<&CommunicatorWrap::Transport>("transport"),
          InstanceAccessor<&CommunicatorWrap::DirectOps>("directOps"),
          InstanceAccessor<&CommunicatorWrap::Pending>("pending"),
          InstanceAccessor<&CommunicatorWrap::Backend>("backend"),
          InstanceMethod<&CommunicatorWrap::Connect>("connect"),
          InstanceMethod<&CommunicatorWrap::Collective>("collective"),
          InstanceMethod<&CommunicatorWrap::Group>("group"),
          InstanceMethod<&CommunicatorWrap::Abort>("abort"),
          InstanceMethod<&CommunicatorWrap::Destroy>("destroy"),
      });
  exports.Set("Communicator", ctor);
}

CommunicatorWrap::CommunicatorWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<CommunicatorWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    throw Napi::TypeError::New(env, "Communicator(options): options {backend, rank, size, node, host, name, device} required");
  }
  Napi::Object o = info[0].As<Napi::Object>();
  auto integer = [&](const char* key, int fallback) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
  };
  auto text = [&](const char* key, const char* fallback) {
    Napi::Value v = o.Get(key);
    return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(fallback);
  };
  backend_ = text("backend", "cpu");
  const std::string name = text("name", "group");
  comm_ = Translate(env, [&]() -> std::shared_ptr<Communicator> {
    if (backend_ == "cpu") {
      CpuCommunicatorOptions options;
      options.rank = integer("rank", -1);
      options.size = integer("size", 0);
      options.node = integer("node", 0);
      options.host = text("host", "127.0.0.1");
      options.name = name;
      return std::make_shared<CpuCommunicator>(options);
    }
    if (backend_ == "nccl") {
#ifdef MICS_WITH_CUDA
      return CreateNcclCommunicator(integer("rank", -1), integer("size", 0), integer("device", 0), name);
#else
      throw Error(ErrorCode::kUnavailable,
                  "backend 'nccl' needs the CUDA build of the addon (this one was built by node-gyp without CUDA: "
                  "run `npm run build:cmake` where nvcc exists)");
#endif
    }
    throw Error(ErrorCode::kInvalidArgument, "backend '" + backend_ + "' is not valid: use 'cpu' or 'nccl'");
  });
  thread_ = std::make_unique<ProgressThread>("mics-" + name);
  completion_ = Completion::New(env, Napi::Function(), "mics-completion", 0, 1, this);
  completion_.Unref(env);  // an idle communicator must not keep the process alive
}

CommunicatorWrap::~CommunicatorWrap() {
  if (!destroyed_) StopAndClose();
}

void CommunicatorWrap::StopAndClose() {
  destroyed_ = true;
  if (pending_ > 0) comm_->Abort("communicator destroyed with operations in flight");
  thread_->Stop();  // queued ops run and fail fast (aborted); their completions are queued
  comm_->Shutdown();
  completion_.Release();
}

void CommunicatorWrap::EnsureUsable(Napi::Env env, const char* what) const {
  if (destroyed_) {
    throw ToJsError(env, Error(ErrorCode::kAborted,
                               std::string(what) + ": communicator '" + comm_->name() + "' was destroyed",
                               comm_->rank(), comm_->name(), what));
  }
}

Napi::Value CommunicatorWrap::Address(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), comm_->address());
}
Napi::Value CommunicatorWrap::Rank(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), comm_->rank());
}
Napi::Value CommunicatorWrap::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), comm_->size());
}
Napi::Value CommunicatorWrap::Name(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), comm_->name());
}
Napi::Value CommunicatorWrap::Transport(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), comm_->transport());
}
Napi::Value CommunicatorWrap::DirectOps(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(comm_->directOps()));
}
Napi::Value CommunicatorWrap::Backend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), backend_);
}
Napi::Value CommunicatorWrap::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pending_);
}

Napi::Value CommunicatorWrap::Enqueue(Napi::Env env, std::unique_ptr<PendingOp> op, std::function<void()> work) {
  Napi::Promise promise = op->deferred.Promise();
  if (pending_++ == 0) {
    completion_.Ref(env);
    Ref();  // keep this object alive while an op may still touch it
  }
  PendingOp* raw = op.release();
  bool queued = thread_->Enqueue([this, raw, work = std::move(work)] {
    try {
      work();
    } catch (const Error& e) {
      raw->error = e;
    } catch (const std::exception& e) {
      raw->error = Error(ErrorCode::kInternal, e.what(), comm_->rank(), comm_->name());
    }
    completion_.BlockingCall(raw);
  });
  if (!queued) {
    raw->error = Error(ErrorCode::kAborted, "communicator was destroyed", comm_->rank(), comm_->name());
    SettleOnJsThread(env, Napi::Function(), this, raw);
  }
  return promise;
}

void CommunicatorWrap::SettleOnJsThread(Napi::Env env, Napi::Function, CommunicatorWrap* self, PendingOp* op) {
  std::unique_ptr<PendingOp> owned(op);
  if (env == nullptr) return;  // the environment is shutting down
  Napi::HandleScope scope(env);
  if (op->error) op->deferred.Reject(ToJsError(env, *op->error).Value());
  else op->deferred.Resolve(env.Undefined());
  op->buffers.clear();
  if (--self->pending_ == 0) {
    if (!self->destroyed_) self->completion_.Unref(env);
    self->Unref();
  }
}

Napi::Value CommunicatorWrap::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureUsable(env, "connect");
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "connect(addresses: string[], timeoutMs: number)");
  }
  Napi::Array array = info[0].As<Napi::Array>();
  std::vector<std::string> addresses;
  for (uint32_t i = 0; i < array.Length(); ++i) addresses.push_back(array.Get(i).As<Napi::String>().Utf8Value());
  const int64_t timeoutMs = info[1].As<Napi::Number>().Int64Value();
  auto comm = comm_;
  return Enqueue(env, std::make_unique<PendingOp>(env), [comm, addresses, timeoutMs] {
    comm->Connect(addresses, Clock::now() + std::chrono::milliseconds(timeoutMs));
  });
}

mics::Collective CommunicatorWrap::ParseOp(Napi::Env env, const OpArguments& a, PendingOp* op) const {
  if (!a[0].IsString() || !a[3].IsString() || !a[4].IsString() || !a[5].IsNumber()) {
    throw Napi::TypeError::New(env, "an op is (kind, send, recv, dtype, op, root)");
  }
  mics::Collective c = Translate(env, [&] {
    CollectiveType type = ParseCollective(a[0].As<Napi::String>().Utf8Value());
    DType dtype = ParseDType(a[3].As<Napi::String>().Utf8Value());
    const bool device = comm_->usesDeviceMemory();
    HostView send = ViewOf(env, a[1], "input", device, dtype);
    HostView recv = ViewOf(env, a[2], "output", device, dtype);
    return Describe(type, send, recv, dtype, ParseReduceOp(a[4].As<Napi::String>().Utf8Value()),
                    a[5].As<Napi::Number>().Int32Value(), comm_->rank(), comm_->size());
  });
  for (int i = 1; i <= 2; ++i) {
    if (a[i].IsObject()) op->buffers.push_back(Napi::Persistent(a[i]));
  }
  return c;
}

namespace {
int64_t ParseTimeout(Napi::Env env, const Napi::Value& value) {
  int64_t timeoutMs = value.IsNumber() ? value.As<Napi::Number>().Int64Value() : 0;
  if (timeoutMs <= 0) {
    throw ToJsError(env, Error(ErrorCode::kInvalidArgument,
                               "timeoutMs " + std::to_string(timeoutMs) +
                                   " is not valid: use a positive number of milliseconds"));
  }
  return timeoutMs;
}
}  // namespace

// collective(kind, send, recv, dtype, op, root, timeoutMs)
Napi::Value CommunicatorWrap::Collective(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureUsable(env, "collective");
  if (info.Length() < 7) throw Napi::TypeError::New(env, "collective(kind, send, recv, dtype, op, root, timeoutMs)");
  const int64_t timeoutMs = ParseTimeout(env, info[6]);
  auto op = std::make_unique<PendingOp>(env);
  mics::Collective c = ParseOp(env, {info[0], info[1], info[2], info[3], info[4], info[5]}, op.get());
  auto comm = comm_;
  return Enqueue(env, std::move(op), [comm, c, timeoutMs] {
    comm->Run(c, Clock::now() + std::chrono::milliseconds(timeoutMs));
  });
}

// group([[kind, send, recv, dtype, op, root], ...], timeoutMs): one grouped call.
Napi::Value CommunicatorWrap::Group(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureUsable(env, "group");
  if (info.Length() < 2 || !info[0].IsArray()) throw Napi::TypeError::New(env, "group(ops[], timeoutMs)");
  const int64_t timeoutMs = ParseTimeout(env, info[1]);
  auto op = std::make_unique<PendingOp>(env);
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<mics::Collective> collectives;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value entry = list.Get(i);
    if (!entry.IsArray()) throw Napi::TypeError::New(env, "group: every op is [kind, send, recv, dtype, op, root]");
    Napi::Array a = entry.As<Napi::Array>();
    collectives.push_back(ParseOp(env, {a.Get(0u), a.Get(1u), a.Get(2u), a.Get(3u), a.Get(4u), a.Get(5u)}, op.get()));
  }
  auto comm = comm_;
  return Enqueue(env, std::move(op), [comm, collectives, timeoutMs] {
    comm->RunGroup(collectives, Clock::now() + std::chrono::milliseconds(timeoutMs));
  });
}

Napi::Value CommunicatorWrap::Abort(const Napi::CallbackInfo& info) {
  std::string reason = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "abort() called";
  comm_->Abort(reason);
  // Runs after the op in flight (which the abort ends promptly), or at once when idle.
  auto comm = comm_;
  thread_->Enqueue([comm] { comm->PropagateAbort(); });
  return info.Env().Undefined();
}

Napi::Value CommunicatorWrap::Destroy(const Napi::CallbackInfo& info) {
  if (!destroyed_) StopAndClose();
  return info.Env().Undefined();
}

}  // namespace mics::napi
