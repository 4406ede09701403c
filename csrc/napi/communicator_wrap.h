// JS class Communicator: any backend's communicator (CPU, or NCCL in the CUDA
// build) with one progress thread. Every op returns a Promise settled on the JS
// thread through a thread-safe function; the op's buffers (and this object) stay
// referenced until then, so GC can never free memory a peer may still be reading.
//
// Teardown never blocks the JS thread and never throws across Node-API:
//  - destroy() (or garbage collection) aborts ops in flight, then lets the progress
//    thread finish on its own: the queued ops fail fast (MICS_ABORTED) and settle,
//    Shutdown() (abort frames to peers, socket waits) runs there, and the thread's
//    last act releases the thread-safe function. That function's finalizer (JS
//    thread, once every completion was delivered) joins the thread, which has
//    ended by then, and frees the Core.
//  - when the JavaScript environment goes away (a worker is terminated, the main
//    thread exits) with the communicator alive, an env cleanup hook does the same
//    and then waits for the thread (bounded by Shutdown), because nothing of the
//    environment may be touched after it: completions that could not be delivered
//    are freed without settling (there is no JS left to see them).
//  - process.exit() runs no cleanup hooks: an atexit handler waits (at most 5 s)
//    for communicators still shutting down, so `destroy(); process.exit()` still
//    tells the peers and unlinks shared memory.
#pragma once

#include <napi.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/progress_thread.h"
#include "core/error.h"
#ifdef MICS_WITH_CUDA
#include "cuda/device_tensor.h"
#endif

namespace mics::napi {

class CommunicatorWrap;

// The device allocations of an op's buffers (NCCL): the op's work holds them until
// the device is done with them, so release() or GC cannot free memory in use, and
// the last reference drops on the progress thread, never the JS thread.
struct OpBuffers {
#ifdef MICS_WITH_CUDA
  std::vector<cuda::DeviceTensor> device;
#endif
};

// One op in flight: created and freed on the JS thread; the progress thread only
// fills in `error`.
struct PendingOp {
  napi_deferred deferred = nullptr;
  std::vector<Napi::Reference<Napi::Value>> buffers;  // kept alive until settled
  std::optional<Error> error;
  CommunicatorWrap* wrap = nullptr;  // alive while the op is pending (it holds a reference)
};

class CommunicatorWrap : public Napi::ObjectWrap<CommunicatorWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit CommunicatorWrap(const Napi::CallbackInfo& info);
  ~CommunicatorWrap() override;

 private:
  // What the progress thread needs, owned by the completion function's finalizer so
  // that it outlives this object until the thread is done (see the header comment).
  struct Core {
    std::shared_ptr<Communicator> comm;
    std::unique_ptr<ProgressThread> thread;
    napi_threadsafe_function completion = nullptr;
    CommunicatorWrap* wrap = nullptr;  // until Retire()
    bool hooked = false;               // the env cleanup hook is registered and has not run
  };

  // Node-API callbacks: JS thread, never throw.
  static void SettleOnJsThread(napi_env env, napi_value, void* context, void* data) noexcept;
  static void FinalizeCore(napi_env env, void* data, void* hint) noexcept;
  static void OnEnvTeardown(void* arg) noexcept;

  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value Transport(const Napi::CallbackInfo& info);
  Napi::Value DirectOps(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Collective(const Napi::CallbackInfo& info);
  Napi::Value Group(const Napi::CallbackInfo& info);
  Napi::Value Backend(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);
  Napi::Value CanSplit(const Napi::CallbackInfo& info);
  Napi::Value SplitInto(const Napi::CallbackInfo& info);
  Napi::Value Settled(const Napi::CallbackInfo& info);

  // Queues work on the progress thread; returns the op's Promise.
  Napi::Value Enqueue(Napi::Env env, std::unique_ptr<PendingOp> op, std::function<void()> work);
  void EnsureUsable(const char* what) const;
  // Starts the teardown (idempotent); ops in flight fail with `reason`.
  void Retire(const std::string& reason) noexcept;

  // One op's arguments: kind, send, recv, dtype, op, root.
  using OpArguments = std::array<Napi::Value, 6>;
  mics::Collective ParseOp(Napi::Env env, const OpArguments& args, OpBuffers* buffers) const;
  // Keeps an op's JS buffers alive until it settles (ops that leave the JS thread).
  static void HoldBuffers(const OpArguments& args, PendingOp* op);
  // Runs on the progress thread: the op(s), holding the buffers' device memory (NCCL).
  static void RunOps(Communicator& comm, const std::vector<mics::Collective>& ops, OpBuffers& buffers,
                     Deadline deadline);

  std::shared_ptr<Communicator> comm_;  // shared with the Core; accessors work after destroy()
  std::string backend_;
  Core* core_ = nullptr;  // null once retired (the Core may be gone)
  int pending_ = 0;       // JS thread only
  // The already-resolved Promise that every op completed on the calling thread
  // returns: one object instead of a new Promise per small op (JS tells it apart).
  Napi::Reference<Napi::Promise> settled_;
};

}  // namespace mics::napi
