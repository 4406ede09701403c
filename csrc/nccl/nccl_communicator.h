// The NCCL backend's communicator (CUDA build only). Same interface as the CPU
// backend: publish address() (rank 0's ncclUniqueId, hex), gather, Connect().
// Ops are enqueued on the communicator's own CUDA stream, grouped when several are
// issued together; Run() returns once the stream's work is done, polling the event
// and ncclCommGetAsyncError from the progress thread (never the JS thread), and
// aborts the communicator (ncclCommAbort) on an NCCL or CUDA error, Abort() or
// timeout. Before a call of a shape not seen yet, the ranks all-gather the call's
// signature and fail with MICS_MISMATCH when they differ (nccl/call_signature.h).
// Shutdown() finalizes with a deadline (ncclCommFinalize, then ncclCommDestroy) and
// aborts when the peers do not finish in time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "cuda/device_tensor.h"

namespace mics {

// Throws Error(kUnavailable) naming why when NCCL or the device is missing.
std::shared_ptr<Communicator> CreateNcclCommunicator(int rank, int size, int device, std::string name);

// Whether `comm` is an NCCL communicator whose library has ncclCommSplit (2.18+)
// and MICS_NCCL_SPLIT is not "0".
bool NcclCanSplit(const Communicator& comm);

// ncclCommSplit of `parent` (collective over ALL its ranks; runs on the parent's
// progress thread): ranks with the same color >= 0 form `child`, an unconnected NCCL
// communicator created for the rank and size the caller computed (ordered by key,
// then parent rank); color -1 takes no part and passes no child. Throws like Run().
void NcclSplit(Communicator& parent, Communicator* child, int color, int key, Deadline deadline);

// Runs `collectives` as one call on an NCCL communicator while holding `buffers`,
// the device allocations they read and write, so that the memory cannot be freed
// (tensor.release(), garbage collection) before the device is done with it. On
// success the stream has passed the call when this returns and the buffers are let
// go here (on the progress thread, never the JS thread). When the call failed with
// work possibly still queued, the communicator keeps them until its stream is idle
// or it is shut down.
void RunNcclHolding(Communicator& comm, const std::vector<Collective>& collectives,
                    std::vector<cuda::DeviceTensor> buffers, Deadline deadline);

// The NCCL version this backend needs at least (ncclAvg arrived in 2.10).
constexpr int kMinNcclVersionCode = 21000;

}  // namespace mics
