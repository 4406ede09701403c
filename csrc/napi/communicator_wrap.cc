#include "napi/communicator_wrap.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/cpu_communicator.h"
#include "napi/errors.h"
#include "napi/host_buffer.h"

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

// A buffer argument: a TypedArray for host backends, a DeviceTensor for NCCL (whose
// allocation is added to `hold`: the op keeps the device memory itself until done).
HostView ViewOf(Napi::Env env, const Napi::Value& value, const char* role, bool device, DType dtype, OpBuffers* hold) {
  if (value.IsNull() || value.IsUndefined()) return {};
  if (device) {
#ifdef MICS_WITH_CUDA
    const cuda::DeviceTensor& tensor = DeviceTensorWrap::Get(env, value, role);
    if (tensor.dtype() != dtype) {
      throw Error(ErrorCode::kInvalidArgument, std::string(role) + " is a " + DTypeName(tensor.dtype()) +
                                                   " DeviceTensor but the op's dtype is " + DTypeName(dtype));
    }
    hold->device.push_back(tensor);
    return HostView{static_cast<char*>(tensor.data()), tensor.byteLength()};
#else
    throw Error(ErrorCode::kUnavailable, "device buffers need the CUDA build");
#endif
  }
  if (!value.IsTypedArray()) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(role) + " buffer must be a TypedArray (this communicator's backend works on host memory)");
  }
  HostBytes bytes = HostBytesOf(env, value, std::string(role) + " buffer");
  return HostView{bytes.data, bytes.bytes};
}

// An op's short name argument (kind, dtype, reduction) without a heap string:
// every op parses three. Longer than any valid name: kept whole for the error.
std::string ShortName(Napi::Env env, const Napi::Value& value) {
  char text[32];
  std::size_t length = 0;
  if (napi_get_value_string_latin1(env, value, text, sizeof(text), &length) != napi_ok || length + 1 >= sizeof(text)) {
    return value.As<Napi::String>().Utf8Value();
  }
  return std::string(text, length);  // small-string optimisation: no allocation
}

bool Overlap(const void* a, std::size_t aBytes, const void* b, std::size_t bBytes) {
  const char* x = static_cast<const char*>(a);
  const char* y = static_cast<const char*>(b);
  return aBytes > 0 && bBytes > 0 && x < y + bBytes && y < x + aBytes;
}

bool Overlap(const HostView& a, const HostView& b) { return Overlap(a.data, a.bytes, b.data, b.bytes); }

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

// Marks the JS objects of this class, so that splitInto() can tell a real
// Communicator from an object that only has its prototype (napi_unwrap would hand
// back another class's pointer for a wrapped object of another class).
constexpr napi_type_tag kCommunicatorTag = {0x6d6963735f636f6dULL, 0x6d756e696361746fULL};

// Communicators whose Shutdown() has not finished: process.exit() runs no env
// cleanup hooks, so an atexit handler waits for them (bounded). Never destroyed:
// the handler runs during exit, after static destructors may have started.
struct ShutdownTracker {
  std::mutex mutex;
  std::condition_variable done;
  int inFlight = 0;
};

ShutdownTracker& Shutdowns() {
  static auto* tracker = new ShutdownTracker();
  return *tracker;
}

void WaitForShutdownsAtExit() {
  ShutdownTracker& t = Shutdowns();
  std::unique_lock<std::mutex> lock(t.mutex);
  t.done.wait_for(lock, std::chrono::seconds(5), [&] { return t.inFlight == 0; });
}

void ShutdownStarted() {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(WaitForShutdownsAtExit); });
  ShutdownTracker& t = Shutdowns();
  std::lock_guard<std::mutex> lock(t.mutex);
  ++t.inFlight;
}

void ShutdownFinished() {
  ShutdownTracker& t = Shutdowns();
  {
    std::lock_guard<std::mutex> lock(t.mutex);
    --t.inFlight;
  }
  t.done.notify_all();
}

// A positive number of milliseconds; Infinity and anything beyond the clock's range
// mean "no deadline" (DeadlineAfter saturates).
double ParseTimeout(const Napi::Value& value, const char* what) {
  const double ms = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : 0;
  if (!(ms > 0)) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + ": timeoutMs " +
                    (value.IsNumber() ? value.ToString().Utf8Value() : std::string("(not a number)")) +
                    " is not valid: use a positive number of milliseconds (Infinity: no deadline)");
  }
  return ms;
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
          InstanceAccessor<&CommunicatorWrap::CanSplit>("canSplit"),
          InstanceAccessor<&CommunicatorWrap::Settled>("settled"),
          InstanceMethod<&CommunicatorWrap::Connect>("connect"),
          InstanceMethod<&CommunicatorWrap::Collective>("collective"),
          InstanceMethod<&CommunicatorWrap::Group>("group"),
          InstanceMethod<&CommunicatorWrap::SplitInto>("splitInto"),
          InstanceMethod<&CommunicatorWrap::Abort>("abort"),
          InstanceMethod<&CommunicatorWrap::Destroy>("destroy"),
      });
  exports.Set("Communicator", ctor);
}

CommunicatorWrap::CommunicatorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommunicatorWrap>(info) {
  Napi::Env env = info.Env();
  Guard(env, [&] {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw InvalidArgument("Communicator(options): options {backend, rank, size, node, host, name, device} required");
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
    if (backend_ == "cpu") {
      CpuCommunicatorOptions options;
      options.rank = integer("rank", -1);
      options.size = integer("size", 0);
      options.node = integer("node", 0);
      options.host = text("host", "127.0.0.1");
      options.name = name;
      comm_ = std::make_shared<CpuCommunicator>(options);
    } else if (backend_ == "nccl") {
#ifdef MICS_WITH_CUDA
      comm_ = CreateNcclCommunicator(integer("rank", -1), integer("size", 0), integer("device", 0), name);
#else
      throw Error(ErrorCode::kUnavailable,
                  "backend 'nccl' needs the CUDA build of the addon (this one was built by node-gyp without CUDA: "
                  "run `npm run build:cmake` where nvcc exists)");
#endif
    } else {
      throw InvalidArgument("backend '" + backend_ + "' is not valid: use 'cpu' or 'nccl'");
    }

    auto core = std::make_unique<Core>();
    core->comm = comm_;
    core->wrap = this;
    core->thread = std::make_unique<ProgressThread>("mics-" + name);
    napi_value resource = Napi::String::New(env, "mics-completion");
    napi_status status = napi_create_threadsafe_function(env, nullptr, nullptr, resource, 0, 1, core.get(),
                                                         FinalizeCore, core.get(), SettleOnJsThread, &core->completion);
    if (status != napi_ok) throw Error(ErrorCode::kInternal, "napi_create_threadsafe_function failed");
    // From here the function's finalizer owns the Core, and nothing below throws (a
    // throwing constructor would leave the finalizer a dangling `wrap`). An idle
    // communicator must not keep the process alive.
    napi_type_tag_object(env, info.This(), &kCommunicatorTag);
    Core* owned = core.release();
    napi_unref_threadsafe_function(env, owned->completion);
    core_ = owned;
    // Registered after the thread-safe function, so that it runs before Node closes
    // that function (cleanup hooks run in reverse order).
    owned->hooked = napi_add_env_cleanup_hook(env, OnEnvTeardown, owned) == napi_ok;
  });
}

CommunicatorWrap::~CommunicatorWrap() {
  // Collected without destroy() (never with ops pending: each holds a reference).
  Retire("communicator was garbage-collected");
}

void CommunicatorWrap::Retire(const std::string& reason) noexcept {
  Core* core = core_;
  if (core == nullptr) return;
  core_ = nullptr;
  core->wrap = nullptr;
  try {
    if (pending_ > 0) comm_->Abort(reason);
    ShutdownStarted();
    // Runs on the progress thread after the queued ops (which fail fast now); the
    // release is its last touch of the Core: FinalizeCore may free it right after.
    core->thread->Finish([core] {
      try {
        core->comm->Shutdown();
      } catch (...) {
      }
      ShutdownFinished();
      napi_release_threadsafe_function(core->completion, napi_tsfn_release);
    });
  } catch (...) {
    // Out of memory for the last task: the Core then stays until the environment ends.
  }
}

void CommunicatorWrap::FinalizeCore(napi_env env, void* data, void*) noexcept {
  auto* core = static_cast<Core*>(data);
  // Normally Retire() ran and the thread has just released the function. If Node
  // finalizes it first (environment teardown), retire now: the thread must be done
  // with the function before this returns, because Node frees it then.
  if (core->wrap != nullptr) core->wrap->Retire("the JavaScript environment is shutting down");
  try {
    core->thread->Join();
  } catch (...) {
  }
  if (core->hooked) napi_remove_env_cleanup_hook(env, OnEnvTeardown, core);
  delete core;
}

void CommunicatorWrap::OnEnvTeardown(void* arg) noexcept {
  auto* core = static_cast<Core*>(arg);
  core->hooked = false;  // hooks run once and are removed by Node
  if (core->wrap != nullptr) {
    core->wrap->Retire("the JavaScript environment (main thread or worker) is shutting down");
  }
  // Nothing of this environment may be used once teardown goes on: wait for the
  // thread here (ops fail fast after the abort; Shutdown is bounded).
  try {
    core->thread->Join();
  } catch (...) {
  }
}

void CommunicatorWrap::EnsureUsable(const char* what) const {
  if (core_ == nullptr) {
    throw Error(ErrorCode::kAborted, std::string(what) + ": communicator '" + comm_->name() + "' was destroyed",
                comm_->rank(), comm_->name(), what);
  }
}

Napi::Value CommunicatorWrap::Address(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), comm_->address()); });
}
Napi::Value CommunicatorWrap::Rank(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), comm_->rank()); });
}
Napi::Value CommunicatorWrap::Size(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), comm_->size()); });
}
Napi::Value CommunicatorWrap::Name(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), comm_->name()); });
}
Napi::Value CommunicatorWrap::Transport(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), comm_->transport()); });
}
Napi::Value CommunicatorWrap::DirectOps(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(comm_->directOps())); });
}
Napi::Value CommunicatorWrap::Backend(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), backend_); });
}
Napi::Value CommunicatorWrap::Pending(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), pending_); });
}

Napi::Value CommunicatorWrap::Enqueue(Napi::Env env, std::unique_ptr<PendingOp> op, std::function<void()> work) {
  napi_value promise = nullptr;
  if (napi_create_promise(env, &op->deferred, &promise) != napi_ok) {
    throw Error(ErrorCode::kInternal, "napi_create_promise failed");
  }
  op->wrap = this;
  if (pending_++ == 0) {
    napi_ref_threadsafe_function(env, core_->completion);
    Ref();  // keep this object alive while an op may still touch it
  }
  PendingOp* raw = op.release();
  napi_threadsafe_function completion = core_->completion;
  auto comm = comm_;
  bool queued = core_->thread->Enqueue([comm, completion, raw, work = std::move(work)] {
    try {
      work();
    } catch (const Error& e) {
      raw->error = e;
    } catch (const std::exception& e) {
      raw->error = Error(ErrorCode::kInternal, e.what(), comm->rank(), comm->name());
    } catch (...) {
      raw->error = Error(ErrorCode::kInternal, "unknown exception in an op", comm->rank(), comm->name());
    }
    // napi_closing only while the environment is torn down: the op's JS objects can
    // be freed only on its JS thread, which runs no more callbacks; it is left.
    napi_call_threadsafe_function(completion, raw, napi_tsfn_blocking);
  });
  if (!queued) {
    raw->error = Error(ErrorCode::kAborted, "communicator was destroyed", comm_->rank(), comm_->name());
    SettleOnJsThread(env, nullptr, nullptr, raw);
  }
  return Napi::Value(env, promise);
}

void CommunicatorWrap::SettleOnJsThread(napi_env env, napi_value, void*, void* data) noexcept {
  std::unique_ptr<PendingOp> op(static_cast<PendingOp*>(data));
  // The environment is torn down: no Promise can settle and the wrap may be
  // finalized next; freeing the op (its references) is all that is left.
  if (env == nullptr) return;
  try {
    napi_handle_scope scope = nullptr;
    const bool scoped = napi_open_handle_scope(env, &scope) == napi_ok;
    // Either call may fail while the environment is going away (no JS can run):
    // the Promise then stays pending and is collected with everything else.
    if (op->error) {
      napi_value error = MakeJsError(env, *op->error);
      if (error != nullptr) napi_reject_deferred(env, op->deferred, error);
    } else {
      napi_value undefined = nullptr;
      napi_get_undefined(env, &undefined);
      napi_resolve_deferred(env, op->deferred, undefined);
    }
    op->buffers.clear();
    CommunicatorWrap* self = op->wrap;
    if (--self->pending_ == 0) {
      if (self->core_ != nullptr) napi_unref_threadsafe_function(env, self->core_->completion);
      uint32_t count = 0;
      napi_reference_unref(env, self->_ref, &count);  // ObjectWrap's own reference (Unref() would throw)
    }
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    if (scoped) napi_close_handle_scope(env, scope);
  } catch (...) {
    // Nothing may cross back into Node-API's C caller.
  }
}

Napi::Value CommunicatorWrap::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    EnsureUsable("connect");
    if (info.Length() < 2 || !info[0].IsArray()) {
      throw InvalidArgument("connect(addresses: string[], timeoutMs: number): addresses must be an array");
    }
    Napi::Array array = info[0].As<Napi::Array>();
    std::vector<std::string> addresses;
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value entry = array.Get(i);
      if (!entry.IsString()) throw InvalidArgument("connect: addresses[" + std::to_string(i) + "] is not a string");
      addresses.push_back(entry.As<Napi::String>().Utf8Value());
    }
    const double timeoutMs = ParseTimeout(info[1], "connect");
    auto comm = comm_;
    auto op = std::make_unique<PendingOp>();
    return Enqueue(env, std::move(op), [comm, addresses, timeoutMs] { comm->Connect(addresses, DeadlineAfter(timeoutMs)); });
  });
}

mics::Collective CommunicatorWrap::ParseOp(Napi::Env env, const OpArguments& a, OpBuffers* buffers) const {
  if (!a[0].IsString() || !a[3].IsString() || !a[4].IsString() || !a[5].IsNumber()) {
    throw InvalidArgument("an op is (kind: string, send, recv, dtype: string, op: string, root: number)");
  }
  CollectiveType type = ParseCollective(ShortName(env, a[0]));
  DType dtype = ParseDType(ShortName(env, a[3]));
  const bool device = comm_->usesDeviceMemory();
  HostView send = ViewOf(env, a[1], "input", device, dtype, buffers);
  HostView recv = ViewOf(env, a[2], "output", device, dtype, buffers);
  mics::Collective c = Describe(type, send, recv, dtype, ParseReduceOp(ShortName(env, a[4])),
                                a[5].As<Napi::Number>().Int32Value(), comm_->rank(), comm_->size());
  return c;
}

void CommunicatorWrap::HoldBuffers(const OpArguments& a, PendingOp* op) {
  for (int i = 1; i <= 2; ++i) {
    if (a[i].IsObject()) op->buffers.push_back(Napi::Persistent(a[i]));
  }
}

Napi::Value CommunicatorWrap::Settled(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (settled_.IsEmpty()) {
    Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
    done.Resolve(env.Undefined());
    settled_ = Napi::Persistent(done.Promise());
  }
  return settled_.Value();
}

// collective(kind, send, recv, dtype, op, root, timeoutMs[, accumulate])
Napi::Value CommunicatorWrap::Collective(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    EnsureUsable("collective");
    if (info.Length() < 7) throw InvalidArgument("collective(kind, send, recv, dtype, op, root, timeoutMs): 7 arguments");
    const double timeoutMs = ParseTimeout(info[6], "collective");
    const OpArguments arguments{info[0], info[1], info[2], info[3], info[4], info[5]};
    OpBuffers parsed;
    mics::Collective c = ParseOp(env, arguments, &parsed);
    if (info.Length() > 7 && info[7].IsBoolean() && info[7].As<Napi::Boolean>().Value()) {
      if (c.type != CollectiveType::kReduceScatter) throw InvalidArgument("accumulate: only reduceScatter adds into its output");
      if (comm_->usesDeviceMemory()) {
        throw InvalidArgument("reduceScatter: accumulate is for the CPU backend (on NCCL, reduce-scatter into a buffer and add it)");
      }
      const std::size_t bytes = c.count * ElementSize(c.dtype);
      if (Overlap(c.send, bytes * static_cast<std::size_t>(comm_->size()), c.recv, bytes)) {
        throw InvalidArgument("reduceScatter: accumulate adds into the output, which must not overlap the input (no in place)");
      }
      c.accumulate = true;
    }
    // The timeout counts from when the op starts, behind the ops queued before it
    // (an op the calling thread started keeps its deadline).
    std::optional<Deadline> started;
    if (pending_ == 0) {
      const Deadline deadline = DeadlineAfter(timeoutMs);
      // Nothing queued: a small op may run right here (Communicator::RunInline; the CPU
      // backend only: others answer kNotRun). A failure rejects its Promise, as on the
      // progress thread. Nothing below allocates unless the op leaves this thread.
      Communicator::InlineResult result = Communicator::InlineResult::kNotRun;
      try {
        result = comm_->RunInline(c, deadline);
      } catch (const Error& e) {
        Napi::Promise::Deferred failed = Napi::Promise::Deferred::New(env);
        napi_value error = MakeJsError(env, e);
        if (error == nullptr) throw;
        failed.Reject(Napi::Value(env, error));
        return failed.Promise();
      }
      if (result == Communicator::InlineResult::kDone) return Settled(info);
      if (result == Communicator::InlineResult::kStarted) started = deadline;  // Run finishes it on the progress thread
    }
    auto op = std::make_unique<PendingOp>();
    HoldBuffers(arguments, op.get());
    auto buffers = std::make_shared<OpBuffers>(std::move(parsed));
    auto comm = comm_;
    return Enqueue(env, std::move(op), [comm, c, timeoutMs, started, buffers] {
      RunOps(*comm, {c}, *buffers, started ? *started : DeadlineAfter(timeoutMs));
    });
  });
}

// group([[kind, send, recv, dtype, op, root], ...], timeoutMs): one grouped call.
Napi::Value CommunicatorWrap::Group(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    EnsureUsable("group");
    if (info.Length() < 2 || !info[0].IsArray()) throw InvalidArgument("group(ops[], timeoutMs): ops must be an array");
    const double timeoutMs = ParseTimeout(info[1], "group");
    auto op = std::make_unique<PendingOp>();
    Napi::Array list = info[0].As<Napi::Array>();
    auto buffers = std::make_shared<OpBuffers>();
    std::vector<mics::Collective> collectives;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value entry = list.Get(i);
      if (!entry.IsArray()) throw InvalidArgument("group: ops[" + std::to_string(i) + "] is not [kind, send, recv, dtype, op, root]");
      Napi::Array a = entry.As<Napi::Array>();
      const OpArguments arguments{a.Get(0u), a.Get(1u), a.Get(2u), a.Get(3u), a.Get(4u), a.Get(5u)};
      collectives.push_back(ParseOp(env, arguments, buffers.get()));
      HoldBuffers(arguments, op.get());
    }
    auto comm = comm_;
    return Enqueue(env, std::move(op), [comm, collectives, timeoutMs, buffers] {
      RunOps(*comm, collectives, *buffers, DeadlineAfter(timeoutMs));
    });
  });
}

void CommunicatorWrap::RunOps(Communicator& comm, const std::vector<mics::Collective>& ops, OpBuffers& buffers,
                              Deadline deadline) {
#ifdef MICS_WITH_CUDA
  if (!buffers.device.empty()) {
    // Moved out: the allocations are let go here, on the progress thread, or kept by
    // the communicator while a failed op may still be on the device.
    RunNcclHolding(comm, ops, std::move(buffers.device), deadline);
    return;
  }
#endif
  if (ops.size() == 1) comm.Run(ops[0], deadline);
  else comm.RunGroup(ops, deadline);
}

Napi::Value CommunicatorWrap::CanSplit(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
#ifdef MICS_WITH_CUDA
    return Napi::Boolean::New(info.Env(), NcclCanSplit(*comm_));
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
  });
}

// splitInto(child: Communicator | null, color, key, timeoutMs): ncclCommSplit of this
// communicator, queued after its ops; `child` (unconnected, same backend) receives the
// new communicator. Every rank of this group calls it; color -1 passes null.
Napi::Value CommunicatorWrap::SplitInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    EnsureUsable("split");
    if (info.Length() < 4 || !info[1].IsNumber() || !info[2].IsNumber()) {
      throw InvalidArgument("splitInto(child, color, key, timeoutMs): color and key must be numbers");
    }
    const int color = info[1].As<Napi::Number>().Int32Value();
    const int key = info[2].As<Napi::Number>().Int32Value();
    const double timeoutMs = ParseTimeout(info[3], "split");
    std::shared_ptr<Communicator> child;
    if (!info[0].IsNull() && !info[0].IsUndefined()) {
      bool tagged = false;
      if (info[0].IsObject()) napi_check_object_type_tag(env, info[0], &kCommunicatorTag, &tagged);
      CommunicatorWrap* wrap = tagged ? Unwrap(info[0].As<Napi::Object>()) : nullptr;
      if (wrap == nullptr) throw InvalidArgument("splitInto: child must be a Communicator or null");
      child = wrap->comm_;
    }
    if ((color >= 0) != (child != nullptr)) {
      throw InvalidArgument("splitInto: color " + std::to_string(color) +
                            (color >= 0 ? " needs a child communicator" : " (no part) takes no child"));
    }
#ifdef MICS_WITH_CUDA
    if (!NcclCanSplit(*comm_)) {
      throw Error(ErrorCode::kUnavailable, "split: this communicator cannot use ncclCommSplit (NCCL 2.18+ needed)",
                  comm_->rank(), comm_->name(), "split");
    }
    auto op = std::make_unique<PendingOp>();
    if (info[0].IsObject()) op->buffers.push_back(Napi::Persistent(info[0]));
    auto comm = comm_;
    return Enqueue(env, std::move(op), [comm, child, color, key, timeoutMs] {
      NcclSplit(*comm, child.get(), color, key, DeadlineAfter(timeoutMs));
    });
#else
    (void)key;
    (void)timeoutMs;
    throw Error(ErrorCode::kUnavailable, "split: ncclCommSplit needs the CUDA build", comm_->rank(),
                comm_->name(), "split");
#endif
  });
}

Napi::Value CommunicatorWrap::Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::string reason = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "abort() called";
    comm_->Abort(reason);
    // Runs after the op in flight (which the abort ends promptly), or at once when idle.
    if (core_ != nullptr) {
      auto comm = comm_;
      core_->thread->Enqueue([comm] { comm->PropagateAbort(); });
    }
    return env.Undefined();
  });
}

Napi::Value CommunicatorWrap::Destroy(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    Retire("communicator destroyed with operations in flight");
    return info.Env().Undefined();
  });
}

}  // namespace mics::napi
