// Promises for device work (kernels, fills, copies), settled on the JS thread of
// the environment that started it once the work is done. Nothing waits on the JS
// thread: kernels complete through a stream callback, host copies on a copy thread.
//
// A job is started on the JS thread (Start: its Promise), completed exactly once
// from any thread (Complete: after the stream callback or the copy), and handed
// through the environment's thread-safe function to the JS thread, which checks
// the status and resolves with job.settle(env) or rejects with a MicsError.
//
// Teardown: when the environment goes away (worker terminated, main thread exits)
// its cleanup hook closes the environment's mailbox, so later completions touch
// nothing of it (their jobs are dropped: no JS is left to settle them), and waits
// for the jobs that read or write JavaScript memory off the JS thread (async
// upload/download), because that memory is freed right after.
#pragma once

#include <napi.h>

#ifdef MICS_WITH_CUDA

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/device_tensor.h"

namespace mics::napi {

class DeviceWork {
 public:
  struct Mailbox;

  struct Job {
    std::string what;                           // names the call in errors: "cudaKernels.adamw"
    int cudaStatus = 0;                         // from the stream callback: a cudaError_t
    std::optional<Error> error;                 // from a copy thread
    std::function<napi_value(napi_env)> settle;  // JS thread, on success: the value (nullptr: undefined)
    std::vector<cuda::DeviceTensor> tensors;    // device memory kept until settled
    std::vector<napi_ref> values;               // JS values kept until settled (Keep)
    bool touchesHost = false;                   // reads or writes JS memory off the JS thread

    // Set by Start.
    napi_env env = nullptr;
    napi_deferred deferred = nullptr;
    std::shared_ptr<Mailbox> mailbox;

    // Holds `value` (a TypedArray, a DeviceTensor object) until the job settles.
    void Keep(napi_env env, napi_value value);
  };

  // JS thread: takes the job and returns its Promise; Complete(job) must follow
  // exactly once. Throws mics::Error (and frees the job) when no Promise can be made.
  static napi_value Start(napi_env env, std::unique_ptr<Job> job, Job** started);
  // Any thread, once the work is over (status or error filled in). Never throws.
  static void Complete(Job* job) noexcept;
};

}  // namespace mics::napi

#endif  // MICS_WITH_CUDA
