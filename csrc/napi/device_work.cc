#ifdef MICS_WITH_CUDA

#include "napi/device_work.h"

#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include "cuda/cuda_stream.h"
#include "napi/errors.h"

namespace mics::napi {

// Shared by the environment and every job it started, so that a completion that
// arrives after the environment is gone finds it closed instead of freed memory.
struct DeviceWork::Mailbox {
  std::mutex mutex;
  std::condition_variable hostJobsDone;
  bool closed = false;
  int hostJobs = 0;  // jobs with touchesHost not yet completed
  napi_threadsafe_function deliver = nullptr;
};

namespace {

// Per environment, on its JS thread.
struct EnvWork {
  napi_env env = nullptr;
  std::shared_ptr<DeviceWork::Mailbox> mailbox;
  int outstanding = 0;  // started, not yet settled: keeps the event loop alive
};

std::mutex registryMutex;
std::unordered_map<napi_env, EnvWork*>& Registry() {
  static auto* registry = new std::unordered_map<napi_env, EnvWork*>();  // never freed: hooks run at exit
  return *registry;
}

void ReleaseValues(DeviceWork::Job& job) {
  for (napi_ref ref : job.values) napi_delete_reference(job.env, ref);
  job.values.clear();
}

void ClearPending(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
}

// The thread-safe function's call_js: JS thread, never throws.
void Deliver(napi_env env, napi_value, void* context, void* data) noexcept {
  std::unique_ptr<DeviceWork::Job> job(static_cast<DeviceWork::Job*>(data));
  if (env == nullptr) {  // the environment is torn down: free what the job held
    ReleaseValues(*job);
    return;
  }
  auto* state = static_cast<EnvWork*>(context);
  napi_handle_scope scope = nullptr;
  const bool scoped = napi_open_handle_scope(env, &scope) == napi_ok;
  napi_value value = nullptr;
  napi_value error = nullptr;
  try {
    if (job->cudaStatus != 0) job->error = cuda::CudaStream::CompletionError(job->cudaStatus, job->what);
    if (job->error) {
      error = MakeJsError(env, *job->error);
    } else if (job->settle) {
      value = job->settle(env);
    }
  } catch (const Error& e) {
    error = MakeJsError(env, e);
  } catch (...) {
    static const Error failed(ErrorCode::kInternal, "device work: settling its Promise failed");
    error = MakeJsError(env, failed);
  }
  ClearPending(env);
  if (error != nullptr) {
    napi_reject_deferred(env, job->deferred, error);
  } else {
    if (value == nullptr) napi_get_undefined(env, &value);
    napi_resolve_deferred(env, job->deferred, value);
  }
  ClearPending(env);
  ReleaseValues(*job);
  // Usually not the last owners; if they are (the tensor was released meanwhile),
  // cudaFree runs here and waits for the device like every cudaFree.
  job->tensors.clear();
  if (--state->outstanding == 0) napi_unref_threadsafe_function(env, state->mailbox->deliver);
  if (scoped) napi_close_handle_scope(env, scope);
}

// Env cleanup hook: JS thread, never throws.
void CloseEnv(void* arg) noexcept {
  auto* state = static_cast<EnvWork*>(arg);
  try {
    {
      std::lock_guard<std::mutex> lock(registryMutex);
      Registry().erase(state->env);
    }
    std::unique_lock<std::mutex> lock(state->mailbox->mutex);
    state->mailbox->closed = true;
    // Bounded by one host copy; nothing else of this environment is waited for.
    state->mailbox->hostJobsDone.wait(lock, [&] { return state->mailbox->hostJobs == 0; });
  } catch (...) {
  }
  // Node closes the thread-safe function after this hook (it was registered first)
  // and hands queued jobs to Deliver with a null env, which must not touch `state`.
  delete state;
}

EnvWork& StateOf(napi_env env) {
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    auto it = Registry().find(env);
    if (it != Registry().end()) return *it->second;
  }
  auto state = std::make_unique<EnvWork>();
  state->env = env;
  state->mailbox = std::make_shared<DeviceWork::Mailbox>();
  napi_value name = nullptr;
  napi_create_string_utf8(env, "mics-device-work", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, state.get(), Deliver,
                                      &state->mailbox->deliver) != napi_ok) {
    throw Error(ErrorCode::kInternal, "napi_create_threadsafe_function failed");
  }
  napi_unref_threadsafe_function(env, state->mailbox->deliver);  // idle: keeps nothing alive
  // After the function, so that it runs before Node closes the function.
  napi_add_env_cleanup_hook(env, CloseEnv, state.get());
  EnvWork* raw = state.release();
  std::lock_guard<std::mutex> lock(registryMutex);
  Registry()[env] = raw;
  return *raw;
}

}  // namespace

void DeviceWork::Job::Keep(napi_env e, napi_value value) {
  napi_ref ref = nullptr;
  if (napi_create_reference(e, value, 1, &ref) != napi_ok) {
    throw Error(ErrorCode::kInternal, what + ": could not hold an argument");
  }
  env = e;
  values.push_back(ref);
}

napi_value DeviceWork::Start(napi_env env, std::unique_ptr<Job> job, Job** started) {
  EnvWork& state = StateOf(env);
  napi_value promise = nullptr;
  job->env = env;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    ReleaseValues(*job);
    throw Error(ErrorCode::kInternal, job->what + ": napi_create_promise failed");
  }
  job->mailbox = state.mailbox;
  if (job->touchesHost) {
    std::lock_guard<std::mutex> lock(state.mailbox->mutex);
    ++state.mailbox->hostJobs;
  }
  if (state.outstanding++ == 0) napi_ref_threadsafe_function(env, state.mailbox->deliver);
  *started = job.release();
  return promise;
}

void DeviceWork::Complete(Job* job) noexcept {
  std::shared_ptr<Mailbox> mailbox = job->mailbox;
  std::lock_guard<std::mutex> lock(mailbox->mutex);
  if (job->touchesHost && --mailbox->hostJobs == 0) mailbox->hostJobsDone.notify_all();
  // Closed: the environment is gone; the job (its references, its device memory)
  // can only be freed on that JS thread, which runs no more: it is left.
  if (mailbox->closed) return;
  napi_call_threadsafe_function(mailbox->deliver, job, napi_tsfn_nonblocking);
}

}  // namespace mics::napi

#endif  // MICS_WITH_CUDA
