// The NCCL backend's communicator (CUDA build only). Same interface as the CPU
// backend: publish address() (rank 0's ncclUniqueId, hex), gather, Connect().
// Ops are enqueued on the communicator's own CUDA stream, grouped when several are
// issued together; Run() returns once the stream's work is done, polling the event
// and ncclCommGetAsyncError from the progress thread (never the JS thread), and
// aborts the communicator (ncclCommAbort) on an NCCL error, Abort() or timeout.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace mics {

// Throws Error(kUnavailable) naming why when NCCL or the device is missing.
std::shared_ptr<Communicator> CreateNcclCommunicator(int rank, int size, int device, std::string name);

// The NCCL version this backend needs at least (ncclAvg arrived in 2.10).
constexpr int kMinNcclVersionCode = 21000;

}  // namespace mics
