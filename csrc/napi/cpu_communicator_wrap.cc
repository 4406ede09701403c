#include "napi/cpu_communicator_wrap.h"

#include <chrono>
#include <string>
#include <vector>

#include "napi/errors.h"

namespace mics::napi {

namespace {

struct HostView {
  char* data = nullptr;
  std::size_t bytes = 0;
};

HostView ViewOf(Napi::Env env, const Napi::Value& value, const char* role) {
  if (value.IsNull() || value.IsUndefined()) return {};
  if (!value.IsTypedArray()) {
    throw Error(ErrorCode::kInvalidArgument, std::string(role) + " buffer must be a TypedArray");
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

void CpuCommunicatorWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "CpuCommunicator",
      {
          InstanceAccessor<&CpuCommunicatorWrap::Address>("address"),
          InstanceAccessor<&CpuCommunicatorWrap::Rank>("rank"),
          InstanceAccessor<&CpuCommunicatorWrap::Size>("size"),
          InstanceAccessor<&CpuCommunicatorWrap::Name>("name"),
          InstanceAccessor<&CpuCommunicatorWrap::Transport>("transport"),
          InstanceAccessor<&CpuCommunicatorWrap::Pending>("pending"),
          InstanceMethod<&CpuCommunicatorWrap::Connect>("connect"),
          InstanceMethod<&CpuCommunicatorWrap::Collective>("collective"),
          InstanceMethod<&CpuCommunicatorWrap::Abort>("abort"),
          InstanceMethod<&CpuCommunicatorWrap::Destroy>("destroy"),
      });
  exports.Set("CpuCommunicator", ctor);
}

CpuCommunicatorWrap::CpuCommunicatorWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<CpuCommunicatorWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    throw Napi::TypeError::New(env, "CpuCommunicator(options): options {rank, size, node, host, name} required");
  }
  Napi::Object o = info[0].As<Napi::Object>();
  CpuCommunicatorOptions options;
  options.rank = o.Get("rank").As<Napi::Number>().Int32Value();
  options.size = o.Get("size").As<Napi::Number>().Int32Value();
  options.node = o.Get("node").As<Napi::Number>().Int32Value();
  options.host = o.Get("host").As<Napi::String>().Utf8Value();
  options.name = o.Get("name").As<Napi::String>().Utf8Value();
  comm_ = Translate(env, [&] { return std::make_shared<CpuCommunicator>(options); });
  thread_ = std::make_unique<ProgressThread>("mics-" + options.name);
  completion_ = Completion::New(env, Napi::Function(), "mics-completion", 0, 1, this);
  completion_.Unref(env);  // an idle communicator must not keep the process alive
}

CpuCommunicatorWrap::~CpuCommunicatorWrap() {
  if (!destroyed_) StopAndClose();
}

void CpuCommunicatorWrap::StopAndClose() {
  destroyed_ = true;
  if (pending_ > 0) comm_->Abort("communicator destroyed with operations in flight");
  thread_->Stop();  // queued ops run and fail fast (aborted); their completions are queued
  comm_->Shutdown();
  completion_.Release();
}

void CpuCommunicatorWrap::EnsureUsable(Napi::Env env, const char* what) const {
  if (destroyed_) {
    throw ToJsError(env, Error(ErrorCode::kAborted,
                               std::string(what) + ": communicator '" + comm_->name() + "' was destroyed",
                               comm_->rank(), comm_->name(), what));
  }
}

Napi::Value CpuCommunicatorWrap::Address(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), comm_->address());
}
Napi::Value CpuCommunicatorWrap::Rank(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), comm_->rank());
}
Napi::Value CpuCommunicatorWrap::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), comm_->size());
}
Napi::Value CpuCommunicatorWrap::Name(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), comm_->name());
}
Napi::Value CpuCommunicatorWrap::Transport(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), comm_->transport());
}
Napi::Value CpuCommunicatorWrap::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pending_);
}

Napi::Value CpuCommunicatorWrap::Enqueue(Napi::Env env, std::unique_ptr<PendingOp> op, std::function<void()> work) {
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

void CpuCommunicatorWrap::SettleOnJsThread(Napi::Env env, Napi::Function, CpuCommunicatorWrap* self, PendingOp* op) {
  std::unique_ptr<PendingOp> owned(op);
  if (env == nullptr) return;  // the environment is shutting down
  Napi::HandleScope scope(env);
  if (op->error) op->deferred.Reject(ToJsError(env, *op->error).Value());
  else op->deferred.Resolve(env.Undefined());
  op->send.Reset();
  op->recv.Reset();
  if (--self->pending_ == 0) {
    if (!self->destroyed_) self->completion_.Unref(env);
    self->Unref();
  }
}

Napi::Value CpuCommunicatorWrap::Connect(const Napi::CallbackInfo& info) {
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

// collective(kind, send, recv, dtype, op, root, timeoutMs)
Napi::Value CpuCommunicatorWrap::Collective(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureUsable(env, "collective");
  if (info.Length() < 7 || !info[0].IsString() || !info[3].IsString() || !info[4].IsString() ||
      !info[5].IsNumber() || !info[6].IsNumber()) {
    throw Napi::TypeError::New(env, "collective(kind, send, recv, dtype, op, root, timeoutMs)");
  }
  const int64_t timeoutMs = info[6].As<Napi::Number>().Int64Value();
  mics::Collective c = Translate(env, [&] {
    if (timeoutMs <= 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "timeoutMs " + std::to_string(timeoutMs) + " is not valid: use a positive number of milliseconds");
    }
    CollectiveType type = ParseCollective(info[0].As<Napi::String>().Utf8Value());
    HostView send = ViewOf(env, info[1], "input");
    HostView recv = ViewOf(env, info[2], "output");
    return Describe(type, send, recv, ParseDType(info[3].As<Napi::String>().Utf8Value()),
                    ParseReduceOp(info[4].As<Napi::String>().Utf8Value()), info[5].As<Napi::Number>().Int32Value(),
                    comm_->rank(), comm_->size());
  });
  auto op = std::make_unique<PendingOp>(env);
  if (info[1].IsObject()) op->send = Napi::Persistent(info[1]);
  if (info[2].IsObject()) op->recv = Napi::Persistent(info[2]);
  auto comm = comm_;
  return Enqueue(env, std::move(op), [comm, c, timeoutMs] {
    comm->Run(c, Clock::now() + std::chrono::milliseconds(timeoutMs));
  });
}

Napi::Value CpuCommunicatorWrap::Abort(const Napi::CallbackInfo& info) {
  std::string reason = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "abort() called";
  comm_->Abort(reason);
  return info.Env().Undefined();
}

Napi::Value CpuCommunicatorWrap::Destroy(const Napi::CallbackInfo& info) {
  if (!destroyed_) StopAndClose();
  return info.Env().Undefined();
}

}  // namespace mics::napi
