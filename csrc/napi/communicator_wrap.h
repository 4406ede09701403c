// JS class Communicator: any backend's communicator (CPU, or NCCL in the CUDA
// build) with one progress thread. Every op returns a Promise settled on the JS
// thread through a thread-safe function; the op's buffers (and this object) stay
// referenced until then, so GC can never free memory a peer may still be reading.
#pragma once

#include <napi.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/progress_thread.h"
#include "core/error.h"
#include "comm/communicator.h"

namespace mics::napi {

struct PendingOp {
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> buffers;  // kept alive until settled
  std::optional<Error> error;
  explicit PendingOp(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class CommunicatorWrap : public Napi::ObjectWrap<CommunicatorWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit CommunicatorWrap(const Napi::CallbackInfo& info);
  ~CommunicatorWrap() override;

 private:
  static void SettleOnJsThread(Napi::Env env, Napi::Function, CommunicatorWrap* self, PendingOp* op);
  using Completion = Napi::TypedThreadSafeFunction<CommunicatorWrap, PendingOp, SettleOnJsThread>;

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

  // Queues work on the progress thread; returns the op's Promise.
  Napi::Value Enqueue(Napi::Env env, std::unique_ptr<PendingOp> op, std::function<void()> work);
  void EnsureUsable(Napi::Env env, const char* what) const;
  void StopAndClose();

  // One op's arguments: kind, send, recv, dtype, op, root. Buffers are kept in `op`.
  using OpArguments = std::array<Napi::Value, 6>;
  mics::Collective ParseOp(Napi::Env env, const OpArguments& args, PendingOp* op) const;

  std::shared_ptr<Communicator> comm_;
  std::string backend_;
  std::unique_ptr<ProgressThread> thread_;
  Completion completion_;
  int pending_ = 0;  // JS thread only
  bool destroyed_ = false;
};

}  // namespace mics::napi
