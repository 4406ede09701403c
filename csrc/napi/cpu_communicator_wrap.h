// JS class CpuCommunicator: the CPU backend's communicator with one progress
// thread. Every op returns a Promise settled on the JS thread through a
// thread-safe function; the op's buffers (and this object) stay referenced until
// then, so GC can never free memory a peer may still be reading.
#pragma once

#include <napi.h>

#include <memory>
#include <optional>

#include "comm/progress_thread.h"
#include "core/error.h"
#include "cpu/cpu_communicator.h"

namespace mics::napi {

struct PendingOp {
  Napi::Promise::Deferred deferred;
  Napi::Reference<Napi::Value> send;
  Napi::Reference<Napi::Value> recv;
  std::optional<Error> error;
  explicit PendingOp(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class CpuCommunicatorWrap : public Napi::ObjectWrap<CpuCommunicatorWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit CpuCommunicatorWrap(const Napi::CallbackInfo& info);
  ~CpuCommunicatorWrap() override;

 private:
  static void SettleOnJsThread(Napi::Env env, Napi::Function, CpuCommunicatorWrap* self, PendingOp* op);
  using Completion = Napi::TypedThreadSafeFunction<CpuCommunicatorWrap, PendingOp, SettleOnJsThread>;

  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value Transport(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Collective(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);

  // Queues work on the progress thread; returns the op's Promise.
  Napi::Value Enqueue(Napi::Env env, std::unique_ptr<PendingOp> op, std::function<void()> work);
  void EnsureUsable(Napi::Env env, const char* what) const;
  void StopAndClose();

  std::shared_ptr<CpuCommunicator> comm_;
  std::unique_ptr<ProgressThread> thread_;
  Completion completion_;
  int pending_ = 0;  // JS thread only
  bool destroyed_ = false;
};

}  // namespace mics::napi
